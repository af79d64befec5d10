//! A TCP server on loopback that runs a function for each connection, on
//! a thread of its own: the raw servers the tests write by hand (echo,
//! line protocols, event streams).

use std::net::{TcpListener, TcpStream};

/// Listens on a free loopback port and calls `serve` for each connection
/// on its own thread; returns the port. Runs until the test process ends.
pub fn tcp_server<F>(serve: F) -> u16
where
    F: Fn(TcpStream) + Send + Sync + Clone + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let serve = serve.clone();
            std::thread::spawn(move || serve(stream));
        }
    });
    port
}
