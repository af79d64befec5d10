//! gRPC through witm with real grpcio clients and servers (Python): over
//! TLS (HTTP/2 in an intercepted tunnel) and h2c (HTTP/2 prior knowledge in
//! a plain tunnel), with no plugin and with a plugin that holds every body —
//! the case where trailers (`grpc-status`) used to be lost.

use witm_test_support::{GrpcOrigin, Origin, TestCa, grpc_call, guests, target_dir};

use crate::sandbox::Bystander;
use crate::start_with_args;

fn witm_ca() -> String {
    target_dir()
        .join("e2e-confdir/witm-ca-cert.pem")
        .display()
        .to_string()
}

/// Unary and streaming calls through witm, without and with the trailers
/// plugin (which holds every body, logs trailers and adds one); the origin's
/// trailer must reach the client either way.
fn calls_go_through(origin_ca: Option<&TestCa>, target_host: &str) {
    let origin = GrpcOrigin::start(origin_ca);
    let target = format!("{target_host}:{}", origin.port);
    let upstream_ca = origin_ca.map(|ca| ca.cert_pem_path.display().to_string());
    let mut args = Vec::new();
    if let Some(ca) = &upstream_ca {
        args.extend(["--upstream-ca", ca.as_str()]);
    }
    let client_ca = origin_ca.map(|_| witm_ca());
    let trailers = guests().rust("trailers").display().to_string();
    for plugins in [vec![], vec![trailers.as_str()]] {
        let mut full_args = args.clone();
        for plugin in &plugins {
            full_args.extend(["-s", plugin]);
        }
        let witm = start_with_args(&[], &full_args);
        let other = Origin::start_unrecorded();
        let bystander = Bystander::start(witm.proxy_url(), other.url("/bystander"));
        let called = grpc_call(&target, Some(&witm.proxy_url()), client_ca.as_deref(), 0.0);
        assert_eq!(called.get("reply"), "olleh");
        assert_eq!(called.get("stream"), "0,1,2,3,4");
        let got = called.get("trailers");
        assert!(got.contains("x-origin-trailer=yes"), "{got}");
        if plugins.is_empty() {
            assert!(!got.contains("x-witm-trailer"), "{got}");
        } else {
            assert!(got.contains("x-witm-trailer=seen"), "{got}");
            assert!(
                witm.wait_for_log("response-trailers grpc-status=0", 1),
                "{}",
                witm.stderr().join("\n")
            );
        }
        bystander.finish().assert_unharmed(1);
    }
}

#[test]
fn grpc_over_tls_keeps_its_trailers_with_and_without_a_body_holding_plugin() {
    let ca = TestCa::new("grpc-tls");
    calls_go_through(Some(&ca), "localhost");
}

#[test]
fn grpc_over_h2c_in_a_tunnel_keeps_its_trailers_with_and_without_a_plugin() {
    calls_go_through(None, "127.0.0.1");
}
