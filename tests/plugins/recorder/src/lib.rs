//! Logs one line per event (`event=<name> …`), so tests can check which
//! events fire, how often and in what order.

use witm_sdk::{ClientConn, Context, ErrorKind, Events, Flow, Level, Plugin};

struct Recorder;

impl Plugin for Recorder {
    fn events() -> Events {
        Events::all()
    }

    fn start(ctx: &Context, args: Vec<String>) -> Result<(), String> {
        ctx.log(Level::Info, &format!("event=start args={}", args.join(",")));
        Ok(())
    }

    fn client_connect(ctx: &Context, conn: &ClientConn) {
        ctx.log(
            Level::Info,
            &format!("event=client-connect conn={}", conn.id()),
        );
    }

    fn request(ctx: &Context, flow: &Flow) {
        let request = flow.request();
        let client = flow.client_conn();
        if let Some(sni) = client.tls_sni() {
            let cert = flow.server_cert();
            ctx.log(
                Level::Info,
                &format!(
                    "tls sni={sni} client-alpn={} server={} server-alpn={} cert-sans={} cert-issuer={}",
                    client.alpn().unwrap_or_default(),
                    flow.server_address().unwrap_or_default(),
                    flow.server_alpn().unwrap_or_default(),
                    cert.as_ref().map(|c| c.sans.join(",")).unwrap_or_default(),
                    cert.map(|c| c.issuer).unwrap_or_default(),
                ),
            );
        }
        ctx.log(
            Level::Info,
            &format!(
                "event=request {} {} authority={} conn={}",
                request.method(),
                request.url(),
                request.authority(),
                flow.client_conn().id()
            ),
        );
    }

    fn response(ctx: &Context, flow: &Flow) {
        let status = flow.response().map(|r| r.status()).unwrap_or(0);
        ctx.log(Level::Info, &format!("event=response status={status}"));
    }

    fn error(ctx: &Context, flow: &Flow) {
        let Some(error) = flow.error() else {
            return;
        };
        let kind = match error.kind {
            ErrorKind::Client => "client",
            ErrorKind::Server => "server",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Tls => "tls",
            ErrorKind::Plugin => "plugin",
            ErrorKind::Internal => "internal",
        };
        ctx.log(
            Level::Info,
            &format!("event=error kind={kind} message={}", error.message),
        );
    }

    fn client_disconnect(ctx: &Context, conn: &ClientConn) {
        ctx.log(
            Level::Info,
            &format!("event=client-disconnect conn={}", conn.id()),
        );
    }

    fn server_connect(ctx: &Context, server: &witm_sdk::ServerConn) {
        ctx.log(
            Level::Info,
            &format!("event=server-connect address={}", server.address()),
        );
    }

    fn server_disconnect(ctx: &Context, server: &witm_sdk::ServerConn) {
        ctx.log(
            Level::Info,
            &format!("event=server-disconnect address={}", server.address()),
        );
    }

    fn done(ctx: &Context) {
        ctx.log(Level::Info, "event=done");
    }
}

witm_sdk::export_plugin!(Recorder);
