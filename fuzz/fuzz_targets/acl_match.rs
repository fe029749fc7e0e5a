//! Differential target for the ACL matcher: `CompiledAcl` (hash sets, one combined regex, wildcard
//! runs collapsed) must agree with `ReferenceAcl`, the literal transcription of the original
//! algorithm, on every input, and neither may panic.
//!
//! Input: NUL-separated fields, `auth_id \0 session_uuid \0 required \0 entry \0 entry ...`
//! (invalid UTF-8 is replaced, so every byte string is an input).
//!
//! Checked, for the required string, every entry (with and without its `!`), the auth_id and the
//! session uuid (with and without a trailing newline):
//! - `matches` equals the reference's answer;
//! - `may_add_access` (the escalation guard) only allows negative entries and entries the
//!   reference grants; always allows a negative entry; allows a plain entry (no wildcard, no
//!   `me`/`my_session`/`edit` segment) the reference grants when no negative entry has such a
//!   segment either; and never allows an entry some instance of which (wildcards replaced by
//!   sample text) a negative entry of the ACL denies;
//! - `may_remove_access` follows its definition over the reference.
//!
//! (That nothing granted is refused by the original, whose `$` also matches before a trailing
//! newline, follows: the reference with Python's `$` grants a superset of the strict one.)
//!
//! Where the compiled matcher deliberately differs (an entry too long or too big to compile:
//! skipped, or for a negative one its literal prefix denied), only "no panic" is checked.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wazo_auth_core::acl::reference::ReferenceAcl;
use wazo_auth_core::acl::CompiledAcl;

/// `MAX_PATTERN_LEN` of `core/src/acl.rs`, with a margin: beyond it the compiled matcher drops
/// the entry on purpose.
const MAX_TRANSLATION: usize = 48 * 1024;

/// An upper bound of the length of an entry's regex translation in `core/src/acl.rs`.
fn translation_bound(entry: &str, auth_id: &str, session: &str) -> usize {
    entry
        .split('.')
        .map(|segment| match segment {
            "me" => 8 + 2 * auth_id.len(),
            "my_session" => 16 + 2 * session.len(),
            _ => 2 + 6 * segment.len(),
        })
        .sum()
}

fn has_reserved_segment(entry: &str) -> bool {
    entry
        .split('.')
        .any(|s| matches!(s, "me" | "my_session" | "edit"))
}

/// No wildcard and no substituted segment: the entry matches only itself.
fn plain(entry: &str) -> bool {
    !entry.contains(['*', '#']) && !has_reserved_segment(entry)
}

/// Strings the entry grants: its wildcards replaced by sample text (`#` never matches a newline;
/// `*` matches neither `.` nor `#`).
fn instances(entry: &str) -> Vec<String> {
    [("", ""), ("q", "q.q"), ("secret", "a.secret.b")]
        .iter()
        .map(|(star, hash)| entry.replace('*', star).replace('#', hash))
        // A string starting with `!` cannot be written as the positive entry `denied` needs.
        .filter(|s| !s.starts_with('!'))
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut fields = text.split('\0');
    let auth_id = fields.next().unwrap_or_default();
    let session = fields.next().unwrap_or_default();
    let required = fields.next().unwrap_or_default();
    let entries: Vec<&str> = fields.collect();
    let owned: Vec<String> = entries.iter().map(|e| e.to_string()).collect();

    let compiled = CompiledAcl::compile(&owned, auth_id, session);

    let mut candidates: Vec<String> = vec![required.into(), auth_id.into(), session.into()];
    for entry in entries.iter().take(8) {
        candidates.push(entry.to_string());
        if let Some(positive) = entry.strip_prefix('!') {
            candidates.push(positive.to_string());
        }
    }
    let with_newline: Vec<String> = candidates.iter().map(|c| format!("{c}\n")).collect();
    candidates.extend(with_newline);

    let comparable = entries
        .iter()
        .all(|e| translation_bound(e, auth_id, session) <= MAX_TRANSLATION);
    let reference = ReferenceAcl::compile(&entries, auth_id, session, false).filter(|_| comparable);
    let Some(reference) = reference else {
        for candidate in &candidates {
            let _ = compiled.matches(candidate);
            let _ = compiled.may_add_access(candidate);
            let _ = compiled.may_remove_access(candidate);
        }
        return;
    };

    let negatives: Vec<&str> = entries
        .iter()
        .copied()
        .filter(|e| e.starts_with('!'))
        .collect();
    // Whether a negative entry of the ACL denies `s` (`s` itself, with the negative entries:
    // granted unless denied; `s` holds no wildcard). `None` when the reference cannot compile.
    let denied = |s: &str| {
        let mut with = vec![s];
        with.extend(negatives.iter().copied());
        ReferenceAcl::compile(&with, auth_id, session, false).map(|r| !r.matches(s))
    };
    let negatives_plain = negatives.iter().all(|n| !has_reserved_segment(&n[1..]));

    for candidate in &candidates {
        let granted = compiled.matches(candidate);
        assert_eq!(
            granted,
            reference.matches(candidate),
            "compiled and reference disagree: acl {entries:?} auth_id {auth_id:?} \
             session {session:?} required {candidate:?}"
        );
        let may_add = compiled.may_add_access(candidate);
        if candidate.starts_with('!') {
            assert!(
                may_add,
                "may_add_access refuses a negative entry {candidate:?}"
            );
        } else if may_add {
            assert!(
                reference.matches(candidate),
                "may_add_access allows what the ACL does not grant: acl {entries:?} access \
                 {candidate:?}"
            );
            // Nothing the added entry grants is denied to the caller.
            for instance in instances(candidate) {
                assert!(
                    denied(&instance) != Some(true),
                    "may_add_access allows {candidate:?}, which grants {instance:?}, denied by \
                     acl {entries:?}"
                );
            }
        } else if plain(candidate) && negatives_plain && reference.matches(candidate) {
            panic!("may_add_access refuses a plain granted entry: acl {entries:?} access {candidate:?}");
        }
        let removed = candidate.strip_prefix('!').unwrap_or(candidate);
        assert_eq!(
            compiled.may_remove_access(candidate),
            reference.matches(removed),
            "may_remove_access: acl {entries:?} access {candidate:?}"
        );
    }
});
