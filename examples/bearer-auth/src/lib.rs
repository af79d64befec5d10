//! Lets a request through only if an auth service says its bearer token is
//! valid: the outbound call (`http-send`) of issue 16, the way proxy-wasm's
//! `dispatch_http_call` is used for auth checks.
//!
//! `-s "bearer_auth.wasm http://127.0.0.1:9000/check 60"`: for each
//! request, the plugin asks `GET <url>` with the request's
//! `Authorization: Bearer …`. 200 means valid; 401 or 403 means not, and
//! the client gets a 401. Answers are kept in the key-value store for the
//! second argument's seconds (60 by default), so a token is checked once a
//! minute, not once a request, and every instance of a pool shares them.
//! When the service cannot be asked (down, slow, refused by policy), the
//! client gets a 503: fail closed.
//!
//! The plugin needs the service in its `allowed_hosts`; a loopback service
//! must be named (`allowed_hosts = ["127.0.0.1:9000"]`).

use core::cell::RefCell;

use witm_sdk::{Context, Events, Flow, Level, Plugin, Response};

struct BearerAuth;

std::thread_local! {
    /// The service's URL and how long an answer is kept, in ms.
    static SETTINGS: RefCell<(String, u64)> = const { RefCell::new((String::new(), 60_000)) };
}

impl Plugin for BearerAuth {
    fn events() -> Events {
        Events::REQUEST
    }

    fn start(_ctx: &Context, args: Vec<String>) -> Result<(), String> {
        let mut args = args.into_iter();
        let url = args
            .next()
            .ok_or("usage: bearer_auth.wasm AUTH_SERVICE_URL [CACHE_SECONDS]")?;
        let seconds: u64 = match args.next() {
            Some(s) => s
                .parse()
                .map_err(|_| format!("{s:?}: not a number of seconds"))?,
            None => 60,
        };
        SETTINGS.with(|s| *s.borrow_mut() = (url, seconds * 1000));
        Ok(())
    }

    fn request(ctx: &Context, flow: &Flow) {
        let request = flow.request();
        let authorization = request.headers().get("authorization").unwrap_or_default();
        let Some(token) = authorization.strip_prefix("Bearer ").map(str::trim) else {
            return refuse(flow, 401, "a bearer token is required\n");
        };
        let now = request.timestamp_start();
        let key = format!("bearer:{token}");
        let cached = ctx.kv_get(&key).and_then(|entry| {
            let (verdict, until) = entry.split_once(':')?;
            (until.parse::<u64>().ok()? > now).then(|| verdict == "valid")
        });
        let valid = match cached {
            Some(valid) => valid,
            None => {
                let (url, keep_ms) = SETTINGS.with(|s| s.borrow().clone());
                let asked =
                    witm_sdk::http_get(ctx, &url, &[("authorization", authorization.as_str())]);
                let valid = match asked {
                    Ok(answer) if answer.status == 200 => true,
                    Ok(answer) if matches!(answer.status, 401 | 403) => false,
                    Ok(answer) => {
                        ctx.log(
                            Level::Warn,
                            &format!("auth service answered {}", answer.status),
                        );
                        return refuse(flow, 503, "the auth service is unavailable\n");
                    }
                    Err(e) => {
                        ctx.log(Level::Warn, &format!("auth service not asked: {e:?}"));
                        return refuse(flow, 503, "the auth service is unavailable\n");
                    }
                };
                let verdict = if valid { "valid" } else { "invalid" };
                let _ = ctx.kv_set(&key, Some(&format!("{verdict}:{}", now + keep_ms)));
                valid
            }
        };
        if !valid {
            refuse(flow, 401, "the bearer token is not valid\n");
        }
    }
}

fn refuse(flow: &Flow, status: u16, text: &str) {
    let mut headers = vec![("content-type".into(), "text/plain".into())];
    if status == 401 {
        headers.push(("www-authenticate".into(), "Bearer".into()));
    }
    flow.set_response(Response::new(status, &headers, text.as_bytes()));
}

witm_sdk::export_plugin!(BearerAuth);
