"""Counts the responses it sees in a global and reports the count when witm
stops (`done`), as a mitmproxy script would."""

import logging

responses = 0


def response(flow):
    global responses
    responses += 1


def done():
    logging.info(f"counter: {responses} responses")
