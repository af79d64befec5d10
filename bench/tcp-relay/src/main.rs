//! `tcp-relay PORT HOST:PORT`: accepts on 127.0.0.1:PORT and copies each
//! connection's bytes to a new connection to HOST:PORT and back, on tokio's
//! multi-threaded runtime (one worker per core, as witm's). No HTTP: the
//! same four system calls per request as a proxy, and nothing else, so
//! what it reaches against straight-to-the-origin is what the kernel and
//! the load generator leave for any proxy on the machine.

use tokio::net::{TcpListener, TcpStream};

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(port), Some(to)) = (args.next(), args.next()) else {
        eprintln!("usage: tcp-relay PORT HOST:PORT");
        std::process::exit(2);
    };
    let port: u16 = port.parse().expect("PORT: a port number");
    let listener = TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("listen");
    loop {
        // SIGINT ends it, as it ends witm: a script's background job
        // otherwise ignores it.
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = tokio::signal::ctrl_c() => return,
        };
        let Ok((mut client, _)) = accepted else {
            continue;
        };
        let to = to.clone();
        tokio::spawn(async move {
            let Ok(mut server) = TcpStream::connect(&to).await else {
                return;
            };
            // As witm's sockets: small writes go at once.
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
        });
    }
}
