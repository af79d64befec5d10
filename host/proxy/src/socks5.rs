//! The SOCKS5 handshake of a `socks5` listener (RFC 1928, CONNECT only),
//! with username/password authentication (RFC 1929) when the listener has
//! credentials: the user and password name the tenant, as
//! `Proxy-Authorization` does on an HTTP listener.
//!
//! After the handshake the stream is a tunnel to the requested host and
//! port, taken over as a CONNECT's would be (intercepted or relayed).
//! Every read is bounded by the protocol's own lengths (at most 255 bytes
//! a field) and the whole handshake by the caller's timeout.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::auth::Authenticator;

const VERSION: u8 = 5;
const NO_AUTH: u8 = 0x00;
const USER_PASSWORD: u8 = 0x02;
const NO_ACCEPTABLE: u8 = 0xff;
const CONNECT: u8 = 0x01;

/// Reply codes (RFC 1928 §6).
const SUCCEEDED: u8 = 0x00;
const NOT_ALLOWED: u8 = 0x02;
const COMMAND_NOT_SUPPORTED: u8 = 0x07;
const ADDRESS_NOT_SUPPORTED: u8 = 0x08;

/// Where the client asked to go, and for which tenant.
#[derive(Debug)]
pub(crate) struct Target {
    pub host: String,
    pub port: u16,
    pub tenant: Option<Arc<str>>,
}

/// Why a SOCKS5 handshake failed, for the log.
#[derive(Debug)]
pub(crate) struct Refused(pub String);

/// Runs the server side of the handshake on `io` and answers "succeeded"
/// (witm connects to the server afterwards, as for CONNECT: a server that
/// cannot be reached fails the tunnel's flows, not the handshake).
/// `authenticate` set: the client must log in; `tenant` is the listener's.
pub(crate) async fn handshake<IO>(
    io: &mut IO,
    authenticate: Option<&Authenticator>,
    tenant: Option<&Arc<str>>,
) -> Result<Target, Refused>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let [version, count] = read_array(io).await?;
    if version != VERSION {
        return Err(Refused(format!("not SOCKS5 (version {version})")));
    }
    let methods = read_vec(io, count.into()).await?;
    let wanted = if authenticate.is_some() {
        USER_PASSWORD
    } else {
        NO_AUTH
    };
    if !methods.contains(&wanted) {
        write(io, &[VERSION, NO_ACCEPTABLE]).await?;
        return Err(Refused(if authenticate.is_some() {
            "the client offers no username/password login".into()
        } else {
            "the client offers no method without login".into()
        }));
    }
    write(io, &[VERSION, wanted]).await?;
    let mut tenant = tenant.cloned();
    if let Some(authenticate) = authenticate {
        let [sub_version, user_len] = read_array(io).await?;
        if sub_version != 1 {
            return Err(Refused(format!("login version {sub_version}, not 1")));
        }
        let user = read_vec(io, user_len.into()).await?;
        let [password_len] = read_array(io).await?;
        let password = read_vec(io, password_len.into()).await?;
        let user = String::from_utf8_lossy(&user);
        let password = String::from_utf8_lossy(&password);
        match authenticate(&user, &password) {
            Some(named) => {
                write(io, &[1, 0]).await?;
                tenant = Some(named);
            }
            None => {
                write(io, &[1, 1]).await?;
                return Err(Refused(format!("wrong credentials for user {user:?}")));
            }
        }
    }
    let [version, command, _reserved, address_type] = read_array(io).await?;
    if version != VERSION {
        return Err(Refused(format!("request of version {version}")));
    }
    let host = match address_type {
        0x01 => Ipv4Addr::from(read_array::<_, 4>(io).await?).to_string(),
        0x04 => Ipv6Addr::from(read_array::<_, 16>(io).await?).to_string(),
        0x03 => {
            let [len] = read_array(io).await?;
            let name = read_vec(io, len.into()).await?;
            match String::from_utf8(name) {
                Ok(name) if !name.is_empty() => name,
                _ => {
                    reply(io, ADDRESS_NOT_SUPPORTED).await?;
                    return Err(Refused("a host name that is not text".into()));
                }
            }
        }
        other => {
            reply(io, ADDRESS_NOT_SUPPORTED).await?;
            return Err(Refused(format!("address type {other}")));
        }
    };
    let port = u16::from_be_bytes(read_array(io).await?);
    if command != CONNECT {
        reply(io, COMMAND_NOT_SUPPORTED).await?;
        return Err(Refused(format!(
            "command {command} (only CONNECT is served)"
        )));
    }
    if port == 0 {
        reply(io, NOT_ALLOWED).await?;
        return Err(Refused("port 0".into()));
    }
    reply(io, SUCCEEDED).await?;
    Ok(Target { host, port, tenant })
}

/// A reply with a bound address of 0.0.0.0:0 (the client does not use it).
async fn reply<IO: AsyncWrite + Unpin>(io: &mut IO, code: u8) -> Result<(), Refused> {
    write(io, &[VERSION, code, 0, 0x01, 0, 0, 0, 0, 0, 0]).await
}

async fn write<IO: AsyncWrite + Unpin>(io: &mut IO, bytes: &[u8]) -> Result<(), Refused> {
    io.write_all(bytes)
        .await
        .map_err(|e| Refused(format!("cannot answer: {e}")))
}

async fn read_array<IO: AsyncRead + Unpin, const N: usize>(
    io: &mut IO,
) -> Result<[u8; N], Refused> {
    let mut bytes = [0u8; N];
    io.read_exact(&mut bytes)
        .await
        .map_err(|e| Refused(format!("handshake cut short: {e}")))?;
    Ok(bytes)
}

async fn read_vec<IO: AsyncRead + Unpin>(io: &mut IO, len: usize) -> Result<Vec<u8>, Refused> {
    let mut bytes = vec![0u8; len];
    io.read_exact(&mut bytes)
        .await
        .map_err(|e| Refused(format!("handshake cut short: {e}")))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn run(
        client_sends: &[u8],
        authenticate: Option<Authenticator>,
    ) -> (Result<Target, Refused>, Vec<u8>) {
        let (mut client, mut server) = tokio::io::duplex(1024);
        client.write_all(client_sends).await.unwrap();
        // All the client says: a handshake cut short ends, not waits.
        client.shutdown().await.unwrap();
        let result = handshake(&mut server, authenticate.as_ref(), None).await;
        drop(server);
        let mut answered = Vec::new();
        client.read_to_end(&mut answered).await.unwrap();
        (result, answered)
    }

    #[tokio::test]
    async fn a_connect_by_name_without_login() {
        let mut hello = vec![5, 1, 0, 5, 1, 0, 3, 11];
        hello.extend_from_slice(b"example.com");
        hello.extend_from_slice(&443u16.to_be_bytes());
        let (target, answered) = run(&hello, None).await;
        let target = target.unwrap();
        assert_eq!((target.host.as_str(), target.port), ("example.com", 443));
        assert_eq!(answered, [5, 0, 5, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    }

    #[tokio::test]
    async fn a_login_names_the_tenant_and_a_wrong_one_is_refused() {
        let check: Authenticator = Arc::new(|user: &str, password: &str| {
            (user == "alice" && password == "pw").then(|| Arc::from("a"))
        });
        let mut hello = vec![5, 2, 0, 2, 1, 5];
        hello.extend_from_slice(b"alice");
        hello.extend_from_slice(&[2]);
        hello.extend_from_slice(b"pw");
        hello.extend_from_slice(&[5, 1, 0, 1, 127, 0, 0, 1, 0, 80]);
        let (target, _) = run(&hello, Some(check.clone())).await;
        let target = target.unwrap();
        assert_eq!(target.tenant.as_deref(), Some("a"));
        assert_eq!(target.host, "127.0.0.1");

        let (refused, answered) =
            run(&[5, 2, 0, 2, 1, 1, b'x', 1, b'y'], Some(check.clone())).await;
        assert!(refused.is_err());
        assert_eq!(answered, [5, 2, 1, 1]);
        // No login offered while one is needed.
        let (refused, answered) = run(&[5, 1, 0], Some(check)).await;
        assert!(refused.is_err());
        assert_eq!(answered, [5, 0xff]);
    }

    #[tokio::test]
    async fn other_commands_and_versions_are_refused() {
        let (refused, answered) = run(&[5, 1, 0, 5, 2, 0, 1, 1, 2, 3, 4, 0, 80], None).await;
        assert!(refused.unwrap_err().0.contains("command 2"));
        assert_eq!(answered[2..4], [5, COMMAND_NOT_SUPPORTED]);
        let (refused, _) = run(&[4, 1, 0], None).await;
        assert!(refused.is_err());
        let (refused, _) = run(&[5, 3, 0], None).await;
        assert!(refused.unwrap_err().0.contains("cut short"));
    }
}
