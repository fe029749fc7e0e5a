//! Request parsing shared by the routes: HTTP Basic credentials, the client address, query
//! parameters (JSON bodies: see `validate`).

use std::net::IpAddr;

use actix_web::HttpRequest;
use base64::Engine;

/// Result of reading `Authorization: Basic ...`.
#[derive(Debug, PartialEq, Eq)]
pub enum BasicAuth {
    /// No usable credentials (header absent, not `Basic `, no `:`, or an empty half).
    Missing,
    /// The header is present but its base64 is invalid (the original answers 500: we 401).
    Invalid,
    Credentials {
        login: String,
        password: String,
    },
}

/// Decodes base64 as Python's non-validating `b64decode`: characters outside the alphabet are
/// discarded, data ends at the first `=`, padding must be sufficient, extra padding is ignored.
fn lenient_base64(input: &[u8]) -> Option<Vec<u8>> {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const ENGINE: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_allow_trailing_bits(true)
            .with_decode_padding_mode(DecodePaddingMode::RequireNone),
    );
    let kept: Vec<u8> = input
        .iter()
        .copied()
        .filter(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
        .collect();
    let data_len = kept.iter().position(|&b| b == b'=').unwrap_or(kept.len());
    let (data, padding) = kept.split_at(data_len);
    let needed = match data.len() % 4 {
        0 => 0,
        1 => return None,
        r => 4 - r,
    };
    if padding.len() < needed {
        return None;
    }
    ENGINE.decode(data).ok()
}

/// Parses Basic credentials as the original: the exact prefix `Basic `, base64, UTF-8 else
/// Latin-1, split on the first `:`, both halves non-empty.
pub fn basic_auth(header: Option<&[u8]>) -> BasicAuth {
    let Some(raw) = header else {
        return BasicAuth::Missing;
    };
    let Some(encoded) = raw.strip_prefix(b"Basic ") else {
        return BasicAuth::Missing;
    };
    let Some(decoded) = lenient_base64(encoded) else {
        return BasicAuth::Invalid;
    };
    let text = match String::from_utf8(decoded) {
        Ok(s) => s,
        Err(e) => e.into_bytes().iter().map(|&b| b as char).collect(),
    };
    let Some((login, password)) = text.split_once(':') else {
        return BasicAuth::Missing;
    };
    if login.is_empty() || password.is_empty() {
        return BasicAuth::Missing;
    }
    BasicAuth::Credentials {
        login: login.to_string(),
        password: password.to_string(),
    }
}

/// Whose `X-Forwarded-For` is read, and how far (`rest_api.num_proxies`,
/// `rest_api.trusted_proxies`).
#[derive(Debug, Clone, Default)]
pub struct ProxyTrust {
    /// The number of proxies in front of the server (0: the header is never read).
    pub num_proxies: u32,
    /// The peers allowed to forward a client address.
    pub trusted: Vec<ipnet::IpNet>,
}

impl ProxyTrust {
    /// Whether `peer` is a trusted proxy (an IPv4-mapped IPv6 peer counts as its IPv4 address).
    pub fn trusts(&self, peer: IpAddr) -> bool {
        let peer = peer.to_canonical();
        self.trusted.iter().any(|net| net.contains(&peer))
    }

    /// The client address of a request from `peer` carrying `forwarded` (its `X-Forwarded-For`,
    /// if any): the `num_proxies`-th address from the right of the header (as Werkzeug's
    /// ProxyFix) when the peer is a trusted proxy and the header has that many; else the peer.
    pub fn client(&self, peer: Option<IpAddr>, forwarded: Option<&str>) -> String {
        let n = self.num_proxies as usize;
        if let (Some(xff), Some(peer)) = (forwarded, peer) {
            if n > 0 && self.trusts(peer) {
                let hops: Vec<&str> = xff
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .collect();
                if hops.len() >= n {
                    return hops[hops.len() - n].to_string();
                }
            }
        }
        peer.map(|a| a.to_string()).unwrap_or_default()
    }
}

/// The client address of `req` (see [`ProxyTrust::client`]).
pub fn client_addr(req: &HttpRequest, proxies: &ProxyTrust) -> String {
    let forwarded = req
        .headers()
        .get("X-Forwarded-For")
        .and_then(|v| v.to_str().ok());
    proxies.client(req.peer_addr().map(|a| a.ip()), forwarded)
}

/// First value of a query parameter (percent-decoded; invalid UTF-8 replaced).
pub fn query_param(req: &HttpRequest, name: &str) -> Option<String> {
    form_urlencoded::parse(req.query_string().as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &[u8]) -> Vec<u8> {
        let mut v = b"Basic ".to_vec();
        v.extend(
            base64::engine::general_purpose::STANDARD
                .encode(s)
                .into_bytes(),
        );
        v
    }

    #[test]
    fn basic_auth_rules() {
        assert_eq!(basic_auth(None), BasicAuth::Missing);
        assert_eq!(
            basic_auth(Some(&b64(b"alice:pa:ss"))),
            BasicAuth::Credentials {
                login: "alice".into(),
                password: "pa:ss".into()
            }
        );
        // prefix is case-sensitive
        let mut lower = b64(b"a:b");
        lower[0] = b'b';
        assert_eq!(basic_auth(Some(&lower)), BasicAuth::Missing);
        assert_eq!(basic_auth(Some(&b64(b"nocolon"))), BasicAuth::Missing);
        assert_eq!(basic_auth(Some(&b64(b":pw"))), BasicAuth::Missing);
        assert_eq!(basic_auth(Some(&b64(b"user:"))), BasicAuth::Missing);
        assert_eq!(basic_auth(Some(b"Basic !!!notbase64")), BasicAuth::Invalid);
        assert_eq!(basic_auth(Some(b"Basic ====")), BasicAuth::Missing);
        // Lenient like Python's b64decode: extra padding and stray characters are ignored...
        assert_eq!(
            basic_auth(Some(b"Basic YWxpY2U6cHc=====")),
            BasicAuth::Credentials {
                login: "alice".into(),
                password: "pw".into()
            }
        );
        assert_eq!(
            basic_auth(Some(b"Basic YWxp*Y2U6!cHc=")),
            BasicAuth::Credentials {
                login: "alice".into(),
                password: "pw".into()
            }
        );
        // ...but missing padding is not.
        assert_eq!(basic_auth(Some(b"Basic YWxpY2U6cHc")), BasicAuth::Invalid);
        // UTF-8 first
        assert_eq!(
            basic_auth(Some(&b64("éric:pépé€".as_bytes()))),
            BasicAuth::Credentials {
                login: "éric".into(),
                password: "pépé€".into()
            }
        );
        // then Latin-1
        assert_eq!(
            basic_auth(Some(&b64(b"\xe9ric:p\xe9p\xe9"))),
            BasicAuth::Credentials {
                login: "éric".into(),
                password: "pépé".into()
            }
        );
    }
}

#[cfg(test)]
mod forwarded {
    use super::*;

    fn trust(num_proxies: u32, nets: &[&str]) -> ProxyTrust {
        ProxyTrust {
            num_proxies,
            trusted: nets.iter().map(|n| n.parse().unwrap()).collect(),
        }
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn forwarded_addresses_are_read_from_trusted_peers_only() {
        let loopback = trust(1, &["127.0.0.0/8", "::1/128"]);
        // From a trusted proxy: the last hop.
        assert_eq!(
            loopback.client(ip("127.0.0.1"), Some("10.0.0.1, 192.0.2.7")),
            "192.0.2.7"
        );
        assert_eq!(
            loopback.client(ip("127.3.2.1"), Some("192.0.2.7")),
            "192.0.2.7"
        );
        assert_eq!(loopback.client(ip("::1"), Some("192.0.2.7")), "192.0.2.7");
        // An IPv4-mapped IPv6 peer (a dual-stack listener) is its IPv4 address.
        assert_eq!(
            loopback.client(ip("::ffff:127.0.0.1"), Some("192.0.2.7")),
            "192.0.2.7"
        );
        // From anyone else: the peer, whatever the header says.
        assert_eq!(
            loopback.client(ip("198.51.100.4"), Some("127.0.0.1")),
            "198.51.100.4"
        );
        assert_eq!(loopback.client(ip("::2"), Some("192.0.2.7")), "::2");
        // No header, too few hops, or num_proxies 0: the peer.
        assert_eq!(loopback.client(ip("127.0.0.1"), None), "127.0.0.1");
        let two = trust(2, &["10.0.0.0/8"]);
        assert_eq!(two.client(ip("10.1.2.3"), Some("192.0.2.7")), "10.1.2.3");
        assert_eq!(
            two.client(ip("10.1.2.3"), Some("192.0.2.1, 192.0.2.2, 10.0.0.9")),
            "192.0.2.2"
        );
        assert_eq!(
            trust(0, &["0.0.0.0/0"]).client(ip("10.1.2.3"), Some("192.0.2.7")),
            "10.1.2.3"
        );
        // No trusted proxy at all: never read.
        assert_eq!(
            trust(1, &[]).client(ip("127.0.0.1"), Some("192.0.2.7")),
            "127.0.0.1"
        );
        // No peer (a test request): empty, as before.
        assert_eq!(loopback.client(None, Some("192.0.2.7")), "");
    }

    #[test]
    fn client_addr_reads_the_request() {
        let req = actix_web::test::TestRequest::default()
            .peer_addr("127.0.0.1:4000".parse().unwrap())
            .insert_header(("X-Forwarded-For", "203.0.113.5"))
            .to_http_request();
        assert_eq!(
            client_addr(&req, &trust(1, &["127.0.0.1/32"])),
            "203.0.113.5"
        );
        assert_eq!(client_addr(&req, &trust(1, &["10.0.0.0/8"])), "127.0.0.1");
    }
}

#[cfg(test)]
mod robustness {
    //! Random-input robustness (a bounded, deterministic stand-in for fuzzing): the parsers of
    //! untrusted input never panic, whatever the bytes.
    use super::*;

    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn bytes(&mut self, max: usize, alphabet: &[u8]) -> Vec<u8> {
            let len = (self.next() as usize) % max;
            (0..len)
                .map(|_| {
                    let r = self.next() as usize;
                    if alphabet.is_empty() || r.is_multiple_of(4) {
                        (r >> 8) as u8
                    } else {
                        alphabet[(r >> 8) % alphabet.len()]
                    }
                })
                .collect()
        }
    }

    #[test]
    fn parsers_never_panic_on_random_input() {
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let json_alphabet = br#"{}[]":,0123456789.eE+-truefalsnl \"\\u0041expiration backend access_type offline client_id refresh_token"#;
        let b64_alphabet =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=: Basic";
        for _ in 0..20_000 {
            let body = rng.bytes(200, json_alphabet);
            if let Ok(obj) = super::super::validate::token_object(&body) {
                let _ = super::super::token_request::parse(&obj);
            }
            let header = rng.bytes(120, b64_alphabet);
            let _ = basic_auth(Some(&header));
            let mut with_prefix = b"Basic ".to_vec();
            with_prefix.extend(rng.bytes(120, b64_alphabet));
            let _ = basic_auth(Some(&with_prefix));
            let segment =
                String::from_utf8_lossy(&rng.bytes(48, b"0123456789abcdef-ABCDEF{}")).into_owned();
            let _ = wazo_auth_core::ids::parse_canonical(&segment);
        }
    }
}
