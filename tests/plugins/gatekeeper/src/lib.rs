//! Decides about tunnels: refuses a CONNECT to a host whose name starts with
//! "blocked" (`http-connect`), and passes TLS through uninspected when the
//! ClientHello's SNI is the plugin's argument (`tls-clienthello`).

use std::sync::OnceLock;

use witm_sdk::{ClientConn, ClientHello, Context, Events, Flow, Level, Plugin, Response};

static PASS_SNI: OnceLock<String> = OnceLock::new();

struct Gatekeeper;

impl Plugin for Gatekeeper {
    fn events() -> Events {
        Events::HTTP_CONNECT | Events::TLS_CLIENTHELLO
    }

    fn start(_ctx: &Context, args: Vec<String>) -> Result<(), String> {
        let _ = PASS_SNI.set(args.first().cloned().unwrap_or_default());
        Ok(())
    }

    fn http_connect(_ctx: &Context, flow: &Flow) {
        let request = flow.request();
        if request.method() == "CONNECT" && request.host().starts_with("blocked") {
            let refusal = Response::new(403, &[], b"tunnel refused by gatekeeper\n");
            flow.set_response(refusal);
        }
    }

    fn tls_clienthello(ctx: &Context, _conn: &ClientConn, hello: &ClientHello) {
        let sni = hello.sni().unwrap_or_default();
        ctx.log(
            Level::Info,
            &format!(
                "clienthello sni={sni} alpn={}",
                hello.alpn_protocols().join(",")
            ),
        );
        if PASS_SNI
            .get()
            .is_some_and(|pass| !pass.is_empty() && *pass == sni)
        {
            hello.set_ignore_connection(true);
        }
    }
}

witm_sdk::export_plugin!(Gatekeeper);
