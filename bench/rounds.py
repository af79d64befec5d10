"""One table line per row of bench/run.sh, from that row's rounds.

    python3 bench/rounds.py MODE RUNS.tsv ROW...

RUNS.tsv holds a line per row and round: row, round, requests/s, p50 ms,
p99 ms, RSS; or row, round, "failed", why. Each row shows its median round
(the lower middle one of an even count, so that its latencies and RSS are a
real round's), the range of requests/s over its rounds, and ratios of
medians to the direct row and to witm's (no plugin).
"""

import sys


def main() -> None:
    mode, path, rows = sys.argv[1], sys.argv[2], sys.argv[3:]
    rounds: dict[str, list[tuple[int, str, str, str]]] = {name: [] for name in rows}
    failures: dict[str, list[str]] = {name: [] for name in rows}
    with open(path, encoding="utf-8") as runs:
        for line in runs:
            fields = line.rstrip("\n").split("\t")
            name, rest = fields[0], fields[2:]
            if name not in rounds:
                continue
            if rest[:1] == ["failed"]:
                failures[name].append(cell(rest[1] if len(rest) > 1 else "") or "no message")
            elif len(rest) == 4 and rest[0].isdigit():
                rps, p50, p99, rss = rest
                rounds[name].append((int(rps), p50, p99, rss))
            else:
                failures[name].append(f"unreadable result: {cell(line)[:80]}")
    medians = {}
    for name in rows:
        ordered = sorted(rounds[name])
        if ordered:
            medians[name] = ordered[(len(ordered) - 1) // 2]
    for name in rows:
        ran = sorted(rounds[name])
        failed = failures[name]
        if not ran:
            why = failed[-1] if failed else "no rounds"
            print(f"| {mode} | {name} | failed: {why} | | | | | | |")
            continue
        rps, p50, p99, rss = medians[name]
        spread = f"{ran[0][0]}–{ran[-1][0]}" if len(ran) > 1 else "-"
        if failed:
            spread += f"; {len(failed)} of {len(ran) + len(failed)} rounds failed: {failed[-1]}"
        to_direct = ratio(rps, medians.get("direct"))
        to_witm = "-" if name == "direct" else ratio(rps, medians.get("witm"))
        print(f"| {mode} | {name} | {rps} | {spread} | {to_direct} | {to_witm} | {p50} | {p99} | {rss} |")


def cell(text: str) -> str:
    """`text` as one table cell: no column bars, tabs or line ends."""
    return " ".join(text.replace("|", "/").split())


def ratio(rps: int, base: tuple | None) -> str:
    if base is None:
        return "-"
    return f"{rps / max(base[0], 1):.3f}"


if __name__ == "__main__":
    main()
