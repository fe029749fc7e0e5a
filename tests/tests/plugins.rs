//! Black-box tests of the plugin host: loading, refusal, faults, timeouts, ABI compatibility.

use std::time::Duration;

use wazo_auth_tests::serde_json::json;
use wazo_auth_tests::*;

#[test]
fn example_backend_issues_a_token() {
    let s = ServerBuilder::new().start();
    let r = s.login(
        "alice",
        "alice-secret",
        json!({"backend": "example_static"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let data = &r.json()["data"];
    assert_eq!(data["auth_id"], "alice");
    let token = data["token"].as_str().unwrap();
    assert_eq!(
        s.request("HEAD", &format!("/0.1/token/{token}"), &[], None)
            .status,
        204
    );
    let _ = Duration::from_secs(1);
}
