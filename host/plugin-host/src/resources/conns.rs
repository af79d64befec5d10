//! The connection and event objects lent to a plugin: `client-conn`,
//! `server-conn` (shared with the proxy), `client-hello` and
//! `websocket-message` (lent for their event).

use wasmtime::component::Resource;
use witm_flow::WebSocketMessage;

use super::{
    ClientConnHandle, ClientHelloEntry, Result, ServerConnHandle, WebSocketMessageEntry, stale,
    wit_cert,
};
use crate::bindings::types;
use crate::state::HostView;

impl types::HostClientConn for HostView<'_> {
    fn id(&mut self, h: Resource<ClientConnHandle>) -> Result<String> {
        Ok(self.table.get(&h)?.0.id.clone())
    }

    fn address(&mut self, h: Resource<ClientConnHandle>) -> Result<String> {
        Ok(self.table.get(&h)?.0.address.to_string())
    }

    fn timestamp_start(&mut self, h: Resource<ClientConnHandle>) -> Result<u64> {
        Ok(self.table.get(&h)?.0.timestamp_start)
    }

    fn tls_sni(&mut self, h: Resource<ClientConnHandle>) -> Result<Option<String>> {
        Ok(self
            .table
            .get(&h)?
            .0
            .tls
            .as_ref()
            .and_then(|t| t.sni.clone()))
    }

    fn alpn(&mut self, h: Resource<ClientConnHandle>) -> Result<Option<String>> {
        Ok(self
            .table
            .get(&h)?
            .0
            .tls
            .as_ref()
            .and_then(|t| t.alpn.clone()))
    }

    fn drop(&mut self, h: Resource<ClientConnHandle>) -> Result<()> {
        self.table.delete(h)?;
        Ok(())
    }
}

impl types::HostServerConn for HostView<'_> {
    fn address(&mut self, h: Resource<ServerConnHandle>) -> Result<String> {
        Ok(self.table.get(&h).map_err(|_| stale())?.0.address.clone())
    }

    fn sni(&mut self, h: Resource<ServerConnHandle>) -> Result<Option<String>> {
        Ok(self.table.get(&h).map_err(|_| stale())?.0.sni.clone())
    }

    fn alpn(&mut self, h: Resource<ServerConnHandle>) -> Result<Option<String>> {
        Ok(self.table.get(&h).map_err(|_| stale())?.0.alpn.clone())
    }

    fn cert(&mut self, h: Resource<ServerConnHandle>) -> Result<Option<types::Cert>> {
        Ok(self
            .table
            .get(&h)
            .map_err(|_| stale())?
            .0
            .cert
            .as_ref()
            .map(wit_cert))
    }

    fn drop(&mut self, h: Resource<ServerConnHandle>) -> Result<()> {
        self.table.delete(h)?;
        Ok(())
    }
}

impl types::HostClientHello for HostView<'_> {
    fn sni(&mut self, h: Resource<ClientHelloEntry>) -> Result<Option<String>> {
        Ok(self.table.get(&h).map_err(|_| stale())?.0.sni.clone())
    }

    fn alpn_protocols(&mut self, h: Resource<ClientHelloEntry>) -> Result<Vec<String>> {
        Ok(self.table.get(&h).map_err(|_| stale())?.0.alpn.clone())
    }

    fn ignore_connection(&mut self, h: Resource<ClientHelloEntry>) -> Result<bool> {
        Ok(self.table.get(&h).map_err(|_| stale())?.0.ignore_connection)
    }

    fn set_ignore_connection(&mut self, h: Resource<ClientHelloEntry>, ignore: bool) -> Result<()> {
        self.table
            .get_mut(&h)
            .map_err(|_| stale())?
            .0
            .ignore_connection = ignore;
        Ok(())
    }

    fn drop(&mut self, _h: Resource<ClientHelloEntry>) -> Result<()> {
        // Only ever lent: the host takes it back when the event returns.
        Ok(())
    }
}

impl HostView<'_> {
    fn ws_message(&mut self, h: &Resource<WebSocketMessageEntry>) -> Result<&mut WebSocketMessage> {
        Ok(&mut self.table.get_mut(h).map_err(|_| stale())?.0)
    }
}

impl types::HostWebsocketMessage for HostView<'_> {
    fn from_client(&mut self, h: Resource<WebSocketMessageEntry>) -> Result<bool> {
        Ok(self.ws_message(&h)?.from_client)
    }

    fn is_text(&mut self, h: Resource<WebSocketMessageEntry>) -> Result<bool> {
        Ok(self.ws_message(&h)?.is_text)
    }

    fn content(&mut self, h: Resource<WebSocketMessageEntry>) -> Result<Vec<u8>> {
        Ok(self.ws_message(&h)?.content.clone())
    }

    fn set_content(&mut self, h: Resource<WebSocketMessageEntry>, content: Vec<u8>) -> Result<()> {
        self.ws_message(&h)?.content = content;
        Ok(())
    }

    fn text(&mut self, h: Resource<WebSocketMessageEntry>) -> Result<String> {
        Ok(String::from_utf8_lossy(&self.ws_message(&h)?.content).into_owned())
    }

    fn set_text(&mut self, h: Resource<WebSocketMessageEntry>, text: String) -> Result<()> {
        let message = self.ws_message(&h)?;
        message.content = text.into_bytes();
        message.is_text = true;
        Ok(())
    }

    fn drop_message(&mut self, h: Resource<WebSocketMessageEntry>) -> Result<()> {
        self.ws_message(&h)?.dropped = true;
        Ok(())
    }

    fn drop(&mut self, _h: Resource<WebSocketMessageEntry>) -> Result<()> {
        // Only ever lent: the host takes it back when the event returns.
        Ok(())
    }
}
