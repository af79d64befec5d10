//! Answers every request to a domain, and its subdomains, with a 403 made
//! by the plugin: the server never sees it. The domain is the plugin's
//! argument (`-s "block_domain.wasm ads.example"`), `blocked.example` by
//! default.

use core::cell::RefCell;

use witm_sdk::{Context, Events, Flow, Plugin, Response};

struct BlockDomain;

std::thread_local! {
    static DOMAIN: RefCell<String> = RefCell::new("blocked.example".into());
}

impl Plugin for BlockDomain {
    fn events() -> Events {
        Events::REQUEST
    }

    fn start(_ctx: &Context, args: Vec<String>) -> Result<(), String> {
        if let Some(domain) = args.into_iter().next() {
            DOMAIN.with(|d| *d.borrow_mut() = domain.to_ascii_lowercase());
        }
        Ok(())
    }

    fn request(_ctx: &Context, flow: &Flow) {
        let host = flow.request().host().to_ascii_lowercase();
        let blocked = DOMAIN.with(|d| {
            let domain = d.borrow();
            host == *domain || host.ends_with(&format!(".{domain}"))
        });
        if blocked {
            flow.set_response(Response::new(
                403,
                &[("content-type".into(), "text/plain".into())],
                b"blocked by witm\n",
            ));
        }
    }
}

witm_sdk::export_plugin!(BlockDomain);
