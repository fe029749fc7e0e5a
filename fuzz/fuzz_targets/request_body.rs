//! Request bodies on arbitrary bytes: the JSON decoding shared by the resources
//! (`validate::decode`, `validate::token_object`), the token-request validation
//! (`token_request::parse`) and the POST/PUT body validators of users, policies, groups and
//! tenants (`http::body_check`). Never panics, and:
//! - every refusal is a 400 answer;
//! - `token_object` succeeds exactly when `decode` gives an object;
//! - a refused token request has at least one error; an accepted one has its expiration within
//!   `1..=MAX_EXPIRATION`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wazo_auth::http::body_check;
use wazo_auth::http::validate::{decode, token_object};
use wazo_auth::http::token_request::{self, MAX_EXPIRATION};

fuzz_target!(|data: &[u8]| {
    let decoded = match decode(data) {
        Ok(decoded) => decoded,
        Err(answer) => {
            assert_eq!(answer.status().as_u16(), 400, "decode");
            None
        }
    };
    match token_object(data) {
        Ok(object) => {
            assert_eq!(Some(&object), decoded.as_ref(), "token_object");
            match token_request::parse(&object) {
                Ok(request) => {
                    if let Some(expiration) = request.expiration {
                        assert!((1..=MAX_EXPIRATION).contains(&expiration), "{expiration}");
                    }
                }
                Err(errors) => assert!(!errors.is_empty(), "refused without an error"),
            }
        }
        Err(answer) => {
            assert!(decoded.is_none(), "token_object refused an object");
            assert_eq!(answer.status().as_u16(), 400, "token_object");
        }
    }
    for post in [true, false] {
        for (resource, checked) in [
            ("user", body_check::user(data, post)),
            ("policy", body_check::policy(data, post)),
            ("group", body_check::group(data, post)),
            ("tenant", body_check::tenant(data, post)),
        ] {
            if let Err(answer) = checked {
                assert_eq!(answer.status().as_u16(), 400, "{resource} (post: {post})");
            }
        }
    }
});
