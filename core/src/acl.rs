//! ACL matching with the semantics of xivo's `AccessCheck` (spec §2.1).
//!
//! An ACL is a list of `.`-separated access entries. In an entry:
//!
//! * `*` matches zero or more characters that are neither `.` nor `#` (so it
//!   stays within one segment, may match an empty segment and may be glued to
//!   text: `a*` matches `abc` but not `a.b`);
//! * `#` matches any characters, dots included, possibly none (`auth.#`
//!   matches `auth.` and `auth.x.y` but not `auth`; `#` matches everything);
//! * a whole segment equal to `me` also matches the token's `auth_id`,
//!   `my_session` also matches the token's session uuid and `edit` also
//!   matches `update` (never the reverse);
//! * an entry starting with `!` is negative: when it matches, access is
//!   denied whatever the positive entries say.
//!
//! Matching is case-sensitive and anchored on both ends. Substitution and
//! wildcards only exist on the granted (ACL) side: the required access string
//! is always literal.
//!
//! Deliberate differences with the Python original:
//!
//! * Python anchors with `$`, which also matches just before a trailing
//!   newline, so `a.b` grants `a.b\n` there. We are stricter: positive entries
//!   are anchored with `\z`, so a required string with a trailing newline is
//!   only granted when an entry really matches that newline (e.g. through `*`,
//!   which, as in the original, matches any character except `.` and `#`).
//!   Negative entries keep Python's `$` behaviour (`!a.b` also denies
//!   `a.b\n`), so that we never grant anything the original denies.
//! * Python inserts `auth_id` / session uuid into the regex without escaping
//!   them, so their metacharacters would be interpreted (an auth_id such as
//!   `x)|(.*` would grant everything). We escape them: they are matched
//!   literally.
//!
//! As in the original (where `#` becomes a non-`DOTALL` `.*?`), `#` does not
//! match a newline character.
//!
//! Implementation: entries without any wildcard or substitutable segment are
//! stored in hash sets (O(1) exact match); entries with a `me` or `my_session`
//! segment are kept as a short list of parts matched by a position-set
//! simulation (`Bound`), so that nothing compiled depends on the token; all
//! other positive entries are compiled into one alternation regex, and the
//! negative ones into another. The result ([`AclProgram`]) is shared by every
//! token holding the same ACL ([`AclInterner`]); a token adds only its auth_id
//! and session uuid ([`CompiledAcl`]).
//! Entries that cannot be compiled (translation longer than
//! `MAX_PATTERN_LEN`, or exceeding the regex size limit; for a `me` /
//! `my_session` entry, judged on its translation with empty values, and
//! likewise a match of one that would take more than `MAX_BOUND_WORK` steps)
//! never panic and never grant anything: a positive one is skipped; a negative one denies every
//! required string starting with its literal prefix (the text before its
//! first wildcard or substituted segment), a superset of what it would deny.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, Weak};

use regex::Regex;

#[cfg(any(test, fuzzing))]
#[doc(hidden)]
pub mod reference;

/// A token's ACL, compiled once and then matched many times.
///
/// The compiled form of the ACL itself ([`AclProgram`]) does not depend on the token: tokens
/// holding the same ACL share one ([`AclInterner`]). Only the token's auth_id and session uuid
/// (for `me` and `my_session` segments) are kept per token.
///
/// `Send + Sync`; cheap to share behind an `Arc`.
#[derive(Debug, Clone)]
pub struct CompiledAcl {
    program: Arc<AclProgram>,
    /// Empty unless the ACL has a `me` segment.
    auth_id: Box<str>,
    /// Empty unless the ACL has a `my_session` segment.
    session_uuid: Box<str>,
}

/// An ACL compiled independently of any token: the same for every token holding that ACL.
#[derive(Debug)]
pub struct AclProgram {
    /// The ACL as given.
    acl: Arc<[String]>,
    /// Its JSON (an array of strings), written once when first asked for.
    json: std::sync::OnceLock<bytes::Bytes>,
    positive: Side,
    negative: Side,
    /// The negative entries as written (without their `!`), for the escalation guard.
    negative_entries: Vec<String>,
    uses_auth_id: bool,
    uses_session: bool,
}

/// Translated entries longer than this (in regex syntax) are not even handed
/// to the regex compiler: they would cost tens of milliseconds or more to
/// compile (or fail on the size limit) and no sane ACL comes close.
const MAX_PATTERN_LEN: usize = 64 * 1024;

/// One polarity (positive or negative) of a compiled ACL.
#[derive(Debug, Clone, Default)]
struct Side {
    /// Entries that can only match a string equal to themselves.
    exact: HashSet<String>,
    /// Entries with wildcards or an `edit` segment.
    patterns: Patterns,
    /// Entries with a `me` or `my_session` segment (what they match depends on the token).
    bound: Vec<Bound>,
    /// Negative side only: literal prefixes of the negative entries that could
    /// not be compiled. Every string such an entry could match starts with
    /// its literal prefix, so denying all of them over-approximates the entry:
    /// an uncompilable negative denies more, never less (fail closed).
    deny_prefixes: Vec<String>,
    /// Negative side: emulate Python's `$` (a match of `X` also matches `X\n`).
    python_dollar: bool,
}

#[derive(Debug, Clone, Default)]
enum Patterns {
    #[default]
    Empty,
    /// All patterns in a single anchored alternation.
    Combined(Regex),
    /// Fallback when the combined alternation cannot be compiled (size
    /// limits): each pattern that compiles on its own, separately.
    Separate(Vec<Regex>),
}

/// A translated non-exact entry.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Pattern {
    /// Unanchored regex body.
    body: String,
    /// The entry's literal text before its first wildcard or substituted
    /// segment.
    prefix: String,
}

impl Patterns {
    fn is_match(&self, required: &str) -> bool {
        match self {
            Patterns::Empty => false,
            Patterns::Combined(re) => re.is_match(required),
            Patterns::Separate(res) => res.iter().any(|re| re.is_match(required)),
        }
    }

    /// Compiles `patterns`; also returns the ones that could not be compiled.
    fn build(mut patterns: Vec<Pattern>, python_dollar: bool) -> (Patterns, Vec<Pattern>) {
        patterns.sort_unstable();
        patterns.dedup();
        let (mut candidates, mut dropped): (Vec<Pattern>, Vec<Pattern>) = patterns
            .into_iter()
            .partition(|p| p.body.len() <= MAX_PATTERN_LEN);
        if candidates.is_empty() {
            return (Patterns::Empty, dropped);
        }
        if let Some(re) = compile_alternation(&candidates, python_dollar) {
            return (Patterns::Combined(re), dropped);
        }
        // Something is too big: find out which entries compile on their own
        // and drop the others.
        let total = candidates.len();
        let mut kept = Vec::with_capacity(total);
        let mut regexes = Vec::with_capacity(total);
        for pattern in candidates.drain(..) {
            match compile_alternation(std::slice::from_ref(&pattern), python_dollar) {
                Some(re) => {
                    kept.push(pattern);
                    regexes.push(re);
                }
                None => dropped.push(pattern),
            }
        }
        match regexes.len() {
            0 => return (Patterns::Empty, dropped),
            1 => return (Patterns::Combined(regexes.remove(0)), dropped),
            n if n < total => {
                // Some entries were dropped: the survivors may fit together.
                if let Some(re) = compile_alternation(&kept, python_dollar) {
                    return (Patterns::Combined(re), dropped);
                }
            }
            _ => {}
        }
        (Patterns::Separate(regexes), dropped)
    }
}

impl Side {
    fn build(entries: Vec<&str>, negative: bool) -> Side {
        let mut exact = HashSet::new();
        let mut patterns = Vec::new();
        let mut bound_entries = Vec::new();
        for entry in entries {
            if is_exact(entry) {
                exact.insert(entry.to_owned());
            } else if is_bound(entry) {
                bound_entries.push(entry);
            } else {
                // No `me` / `my_session` segment: the translation does not use the values.
                patterns.push(entry_to_regex(entry, "", ""));
            }
        }
        let (patterns, mut dropped) = Patterns::build(patterns, negative);
        // A bound entry is matched by `Bound`, not by a regex; but one whose translation would
        // not compile (judged with empty values) is dropped as an unbound one is, so that what
        // the ACL grants does not depend on where an entry is matched.
        let translations: Vec<Pattern> = bound_entries
            .iter()
            .map(|e| entry_to_regex(e, "", ""))
            .collect();
        let (_, bound_dropped) = Patterns::build(translations, negative);
        let mut bound: Vec<Bound> = bound_entries
            .into_iter()
            .filter(|e| {
                let translation = entry_to_regex(e, "", "");
                !bound_dropped.iter().any(|d| d.body == translation.body)
            })
            .map(Bound::parse)
            .collect();
        bound.sort_unstable_by(|a, b| a.parts.cmp(&b.parts));
        bound.dedup_by(|a, b| a.parts == b.parts);
        dropped.extend(bound_dropped);
        let mut deny_prefixes = Vec::new();
        if negative {
            // A positive entry that cannot be compiled is simply skipped (it
            // grants nothing); a negative one must still deny.
            deny_prefixes = dropped.into_iter().map(|p| p.prefix).collect();
            deny_prefixes.sort_unstable();
            deny_prefixes.dedup();
        }
        Side {
            exact,
            patterns,
            bound,
            deny_prefixes,
            python_dollar: negative,
        }
    }

    fn is_match(&self, required: &str, auth_id: &str, session_uuid: &str) -> bool {
        self.exact.contains(required)
            || (self.python_dollar
                && required
                    .strip_suffix('\n')
                    .is_some_and(|r| self.exact.contains(r)))
            || self.patterns.is_match(required)
            || self
                .bound
                .iter()
                .any(|b| b.matches(required, auth_id, session_uuid, self.python_dollar))
            || self
                .deny_prefixes
                .iter()
                .any(|prefix| required.starts_with(prefix.as_str()))
    }

    fn uses(&self, part: &Part) -> bool {
        self.bound.iter().any(|b| b.parts.contains(part))
    }
}

/// True when `entry` has a `me` or `my_session` segment.
fn is_bound(entry: &str) -> bool {
    entry.split('.').any(|s| s == "me" || s == "my_session")
}

/// One element of an entry with a `me` or `my_session` segment.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Part {
    /// Literal text (segment dots included).
    Lit(String),
    /// `*` (a run of them): any characters but `.` and `#`.
    Star,
    /// `#` (a run of them): any characters but `\n`.
    Hash,
    /// A `me` segment: `me` or the token's auth_id.
    Me,
    /// A `my_session` segment: `my_session` or the token's session uuid.
    Session,
    /// An `edit` segment: `edit` or `update`.
    Edit,
}

/// Above this much work (required string length × entry size), a bound entry is not matched:
/// a positive one grants nothing, a negative one denies its literal prefix (as an entry too big
/// to compile).
const MAX_BOUND_WORK: usize = 1 << 24;

/// An entry with a `me` or `my_session` segment, matched without a regex, so that it is
/// compiled once for every token holding it: the token's values are only supplied when
/// matching. The language is the one of [`entry_to_regex`]'s translation (anchored); matching
/// simulates it over the positions of the required string, in O(length × parts).
#[derive(Debug, Clone)]
struct Bound {
    parts: Vec<Part>,
    /// The literal text before the first wildcard or substituted segment: every string the
    /// entry matches starts with it.
    prefix: String,
    /// The sum of the parts' sizes (a literal counts its length).
    size: usize,
}

impl Bound {
    fn parse(entry: &str) -> Bound {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let flush = |literal: &mut String, parts: &mut Vec<Part>| {
            if !literal.is_empty() {
                parts.push(Part::Lit(std::mem::take(literal)));
            }
        };
        for (i, segment) in entry.split('.').enumerate() {
            if i > 0 {
                literal.push('.');
            }
            let substituted = match segment {
                "me" => Some(Part::Me),
                "my_session" => Some(Part::Session),
                "edit" => Some(Part::Edit),
                _ => None,
            };
            if let Some(part) = substituted {
                flush(&mut literal, &mut parts);
                parts.push(part);
                continue;
            }
            // Runs of one wildcard are collapsed, as in `entry_to_regex`.
            let mut previous = None;
            for c in segment.chars() {
                match c {
                    '*' | '#' if previous == Some(c) => {}
                    '*' => {
                        flush(&mut literal, &mut parts);
                        parts.push(Part::Star);
                    }
                    '#' => {
                        flush(&mut literal, &mut parts);
                        parts.push(Part::Hash);
                    }
                    _ => literal.push(c),
                }
                previous = Some(c);
            }
        }
        flush(&mut literal, &mut parts);
        let prefix = match parts.first() {
            Some(Part::Lit(l)) => l.clone(),
            _ => String::new(),
        };
        let size = parts
            .iter()
            .map(|p| match p {
                Part::Lit(l) => l.len(),
                _ => 1,
            })
            .sum();
        Bound {
            parts,
            prefix,
            size,
        }
    }

    /// Whether the entry matches all of `required` (or, with `python_dollar`, all of it but a
    /// final `\n`), `me` standing for `auth_id` and `my_session` for `session_uuid`.
    ///
    /// Works on bytes: every literal is valid UTF-8 and starts and ends on character
    /// boundaries, so a wildcard can only cover whole characters, and a character other than
    /// `.`, `#` or `\n` has no byte equal to one of them.
    fn matches(
        &self,
        required: &str,
        auth_id: &str,
        session_uuid: &str,
        python_dollar: bool,
    ) -> bool {
        if !required.starts_with(self.prefix.as_str()) {
            return false;
        }
        let work =
            (required.len() + 1).saturating_mul(self.size + auth_id.len() + session_uuid.len());
        if work > MAX_BOUND_WORK {
            // Fails closed, as an entry too big to compile: a positive entry grants nothing; a
            // negative one denies its prefix (checked above).
            return python_dollar;
        }
        let s = required.as_bytes();
        let n = s.len();
        let mut reach = vec![false; n + 1];
        let mut next = vec![false; n + 1];
        reach[0] = true;
        for part in &self.parts {
            next.fill(false);
            let mut any = false;
            match part {
                Part::Star | Part::Hash => {
                    let allowed = |c: u8| match part {
                        Part::Star => c != b'.' && c != b'#',
                        _ => c != b'\n',
                    };
                    let mut on = false;
                    for p in 0..=n {
                        on = reach[p] || (on && p > 0 && allowed(s[p - 1]));
                        next[p] = on;
                        any |= on;
                    }
                }
                _ => {
                    let single;
                    let alternatives: &[&str] = match part {
                        Part::Lit(l) => {
                            single = [l.as_str()];
                            &single
                        }
                        Part::Me => &["me", auth_id],
                        Part::Session => &["my_session", session_uuid],
                        _ => &["edit", "update"],
                    };
                    for p in (0..=n).filter(|&p| reach[p]) {
                        for alternative in alternatives {
                            if s[p..].starts_with(alternative.as_bytes()) {
                                next[p + alternative.len()] = true;
                                any = true;
                            }
                        }
                    }
                }
            }
            if !any {
                return false;
            }
            std::mem::swap(&mut reach, &mut next);
        }
        reach[n] || (python_dollar && n > 0 && s[n - 1] == b'\n' && reach[n - 1])
    }
}

/// Segments replaced by an alternation on the granted side.
const RESERVED_SEGMENTS: [&str; 3] = ["me", "my_session", "edit"];

/// True when `entry` can only match a required string equal to itself.
fn is_exact(entry: &str) -> bool {
    !entry.contains(['*', '#']) && !entry.split('.').any(|s| RESERVED_SEGMENTS.contains(&s))
}

/// Translates one ACL entry (without its `!`) to an unanchored regex body.
///
/// Equivalent to the original's `re.escape` + replace `\*`/`\#` + split on
/// `\.` + reserved-word substitution (a segment made by the split is never a
/// reserved word unless it is one of the entry's own `.`-separated segments),
/// except that substituted values are escaped here. Runs of `*` (or of `#`)
/// are collapsed, which does not change the language: `[^.#]*[^.#]*` is
/// `[^.#]*` and `.*.*` is `.*`. (`*#` is kept as is: `*` matches `\n`, `#`
/// does not.)
fn entry_to_regex(entry: &str, auth_id: &str, session_uuid: &str) -> Pattern {
    let mut out = String::with_capacity(entry.len() * 2 + 8);
    let mut prefix = String::new();
    let mut in_prefix = true;
    for (i, segment) in entry.split('.').enumerate() {
        if i > 0 {
            out.push_str(r"\.");
            if in_prefix {
                prefix.push('.');
            }
        }
        match segment {
            "me" => {
                out.push_str("(?:me|");
                out.push_str(&regex::escape(auth_id));
                out.push(')');
                in_prefix = false;
            }
            "my_session" => {
                out.push_str("(?:my_session|");
                out.push_str(&regex::escape(session_uuid));
                out.push(')');
                in_prefix = false;
            }
            "edit" => {
                out.push_str("(?:edit|update)");
                in_prefix = false;
            }
            _ => {
                let mut buf = [0u8; 4];
                let mut previous = None;
                for c in segment.chars() {
                    match c {
                        '*' | '#' if previous == Some(c) => {}
                        '*' => {
                            out.push_str("[^.#]*");
                            in_prefix = false;
                        }
                        // `.` without the `s` flag: anything but `\n`, like
                        // Python's non-DOTALL `.`.
                        '#' => {
                            out.push_str(".*");
                            in_prefix = false;
                        }
                        _ => {
                            out.push_str(&regex::escape(c.encode_utf8(&mut buf)));
                            if in_prefix {
                                prefix.push(c);
                            }
                        }
                    }
                    previous = Some(c);
                }
            }
        }
    }
    Pattern { body: out, prefix }
}

/// Compiles `\A(?:b1|b2|...)\z` (or `\A(?:b1|b2|...)\n?\z`, which is what
/// Python's `$` means, with `python_dollar`); `None` when it cannot be
/// compiled.
fn compile_alternation(patterns: &[Pattern], python_dollar: bool) -> Option<Regex> {
    let len = patterns.iter().map(|p| p.body.len() + 5).sum::<usize>() + 8;
    let mut regex = String::with_capacity(len);
    regex.push_str(r"\A(?:");
    for (i, pattern) in patterns.iter().enumerate() {
        if i > 0 {
            regex.push('|');
        }
        regex.push_str("(?:");
        regex.push_str(&pattern.body);
        regex.push(')');
    }
    regex.push_str(if python_dollar { r")\n?\z" } else { r")\z" });
    Regex::new(&regex).ok()
}

impl AclProgram {
    /// The ACL's entries, as given.
    pub fn acl(&self) -> &Arc<[String]> {
        &self.acl
    }

    /// The ACL's entries as a JSON array (compact), shared by the tokens holding this ACL.
    pub fn acl_json(&self) -> &bytes::Bytes {
        self.json.get_or_init(|| {
            serde_json::to_vec(&*self.acl)
                .map(bytes::Bytes::from)
                .unwrap_or_default()
        })
    }

    /// Compiles an ACL, for any token.
    pub fn compile(acl: &[String]) -> AclProgram {
        let mut positives = Vec::new();
        let mut negatives = Vec::new();
        for entry in acl {
            match entry.strip_prefix('!') {
                Some(negative) => negatives.push(negative),
                None => positives.push(entry.as_str()),
            }
        }
        let positive = Side::build(positives, false);
        let negative = Side::build(negatives.clone(), true);
        let uses = |part: Part| positive.uses(&part) || negative.uses(&part);
        AclProgram {
            acl: acl.into(),
            json: std::sync::OnceLock::new(),
            negative_entries: negatives.iter().map(|e| e.to_string()).collect(),
            uses_auth_id: uses(Part::Me),
            uses_session: uses(Part::Session),
            positive,
            negative,
        }
    }
}

impl CompiledAcl {
    /// Compiles `acl` for the token of `auth_id` and `session_uuid`, sharing nothing (see
    /// [`AclInterner::compile`]).
    pub fn compile(acl: &[String], auth_id: &str, session_uuid: &str) -> CompiledAcl {
        CompiledAcl::bind(Arc::new(AclProgram::compile(acl)), auth_id, session_uuid)
    }

    /// `program` for the token of `auth_id` and `session_uuid`.
    pub fn bind(program: Arc<AclProgram>, auth_id: &str, session_uuid: &str) -> CompiledAcl {
        let value = |used: bool, v: &str| if used { v.into() } else { Box::default() };
        CompiledAcl {
            auth_id: value(program.uses_auth_id, auth_id),
            session_uuid: value(program.uses_session, session_uuid),
            program,
        }
    }

    /// The compiled ACL, shared by every token holding it.
    pub fn program(&self) -> &Arc<AclProgram> {
        &self.program
    }

    /// True when `required` is granted (negatives win).
    pub fn matches(&self, required: &str) -> bool {
        let p = &self.program;
        !p.negative
            .is_match(required, &self.auth_id, &self.session_uuid)
            && p.positive
                .is_match(required, &self.auth_id, &self.session_uuid)
    }

    /// Like [`matches`](Self::matches), with the original's rule that no
    /// required access (`None`) is always granted, even by an empty ACL.
    pub fn matches_optional(&self, required: Option<&str>) -> bool {
        required.is_none_or(|r| self.matches(r))
    }

    /// Policy editing guard: `access` may be added to a policy (or a policy
    /// holding it associated) when it is negative (starts with `!`), or when
    /// this ACL matches it as a literal string (the original's rule) **and**
    /// none of this ACL's negative entries could match something `access`
    /// grants. Without the second condition, a caller holding `confd.#` and
    /// `!confd.secret.#` could add `confd.#` and hand others
    /// `confd.secret.read`, which it is itself denied. The overlap test is
    /// conservative: a `me`, `my_session` or `edit` segment counts as any
    /// text, so it may refuse an addition that could not escalate, never the
    /// reverse.
    pub fn may_add_access(&self, access: &str) -> bool {
        access.starts_with('!')
            || (self.matches(access)
                && !self
                    .program
                    .negative_entries
                    .iter()
                    // Negative entries keep Python's `$`: `!x` also denies `x\n`.
                    .any(|negative| {
                        patterns_overlap(access, negative)
                            || patterns_overlap(access, &format!("{negative}\n"))
                    }))
    }

    /// Policy editing helper of the original: `access` may be removed when
    /// this ACL matches it with one leading `!` removed.
    pub fn may_remove_access(&self, access: &str) -> bool {
        self.matches(access.strip_prefix('!').unwrap_or(access))
    }
}

/// Shares compiled ACLs between the tokens holding the same ACL: a million tokens of a few
/// hundred distinct ACLs hold a few hundred [`AclProgram`]s. Holds them weakly (a program lives
/// as long as a token using it); dead entries are swept when the map has doubled since the last
/// sweep, an amortised O(1) per compilation.
#[derive(Debug, Default)]
pub struct AclInterner {
    programs: Mutex<Programs>,
}

#[derive(Debug, Default)]
struct Programs {
    by_acl: HashMap<Arc<[String]>, Weak<AclProgram>>,
    sweep_at: usize,
}

/// The interner's map is swept of dead entries from this size on.
const MIN_SWEEP: usize = 1024;

impl AclInterner {
    /// `acl` compiled for the token of `auth_id` and `session_uuid`, sharing the program of any
    /// live token holding the same ACL (same entries, same order).
    pub fn compile(&self, acl: &[String], auth_id: &str, session_uuid: &str) -> CompiledAcl {
        if let Some(program) = self.lock().by_acl.get(acl).and_then(Weak::upgrade) {
            return CompiledAcl::bind(program, auth_id, session_uuid);
        }
        // Compiled without the lock (it may take a while); a concurrent compilation of the
        // same ACL may win the race, and is then used.
        let compiled = Arc::new(AclProgram::compile(acl));
        let program = {
            let mut programs = self.lock();
            match programs.by_acl.get(acl).and_then(Weak::upgrade) {
                Some(existing) => existing,
                None => {
                    programs
                        .by_acl
                        .insert(compiled.acl.clone(), Arc::downgrade(&compiled));
                    if programs.by_acl.len() >= programs.sweep_at.max(MIN_SWEEP) {
                        programs.by_acl.retain(|_, p| p.strong_count() > 0);
                        programs.sweep_at = programs.by_acl.len() * 2;
                    }
                    compiled
                }
            }
        };
        CompiledAcl::bind(program, auth_id, session_uuid)
    }

    /// Number of distinct ACLs held (live or not yet swept).
    pub fn len(&self) -> usize {
        self.lock().by_acl.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of distinct ACLs in use by live tokens.
    pub fn live(&self) -> usize {
        self.lock()
            .by_acl
            .values()
            .filter(|p| p.strong_count() > 0)
            .count()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Programs> {
        // The lock only guards map operations; a poisoned lock holds a consistent map.
        self.programs.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One element of an ACL entry seen as a pattern over characters.
#[derive(Clone, Copy, PartialEq)]
enum Tok {
    Lit(char),
    /// `*`: any characters but `.` and `#`.
    Star,
    /// `#`: any characters but a newline.
    Hash,
    /// A substituted segment (`me`, `my_session`, `edit`): any characters, as far as this test
    /// knows.
    Any,
}

fn tokens(entry: &str) -> Vec<Tok> {
    let mut out = Vec::with_capacity(entry.len());
    for (i, segment) in entry.split('.').enumerate() {
        if i > 0 {
            out.push(Tok::Lit('.'));
        }
        if RESERVED_SEGMENTS.contains(&segment) {
            // `me` / `my_session` stand for an auth_id or session uuid (any text, as far as this
            // test knows); `edit` also matches `update`.
            out.push(Tok::Any);
            continue;
        }
        for c in segment.chars() {
            out.push(match c {
                '*' => Tok::Star,
                '#' => Tok::Hash,
                c => Tok::Lit(c),
            });
        }
    }
    out
}

/// Entries longer than this are assumed to overlap (refused): the test is quadratic.
const MAX_OVERLAP_LEN: usize = 4096;

/// Whether some string is matched by both entries (read as patterns, see [`tokens`]): a
/// reachability search over pairs of positions of the two patterns, O(len(a) × len(b)).
fn patterns_overlap(a: &str, b: &str) -> bool {
    if a.len() > MAX_OVERLAP_LEN || b.len() > MAX_OVERLAP_LEN {
        return true;
    }
    let (a, b) = (tokens(a), tokens(b));
    let (n, m) = (a.len(), b.len());
    let mut seen = vec![false; (n + 1) * (m + 1)];
    let mut stack = vec![(0usize, 0usize)];
    // A character both patterns can consume next.
    let lit_fits = |c: char, t: Tok| match t {
        Tok::Lit(d) => c == d,
        Tok::Star => c != '.' && c != '#',
        Tok::Hash => c != '\n',
        Tok::Any => true,
    };
    while let Some((i, j)) = stack.pop() {
        if std::mem::replace(&mut seen[i * (m + 1) + j], true) {
            continue;
        }
        if i == n && j == m {
            return true;
        }
        let (ta, tb) = (a.get(i).copied(), b.get(j).copied());
        // A wildcard may match nothing more.
        if matches!(ta, Some(Tok::Star | Tok::Hash | Tok::Any)) {
            stack.push((i + 1, j));
        }
        if matches!(tb, Some(Tok::Star | Tok::Hash | Tok::Any)) {
            stack.push((i, j + 1));
        }
        // One common character: a literal on one side, consumed by the other side's token
        // (a wildcard stays in place, a literal moves on).
        match (ta, tb) {
            (Some(Tok::Lit(c)), Some(t)) if lit_fits(c, t) => {
                stack.push((i + 1, if matches!(t, Tok::Lit(_)) { j + 1 } else { j }));
            }
            (Some(t), Some(Tok::Lit(c))) if lit_fits(c, t) => {
                stack.push((if matches!(t, Tok::Lit(_)) { i + 1 } else { i }, j + 1));
            }
            // Two wildcards consuming one character both stay in place: no new state. (A
            // string matched by both through such a character is also matched by both with
            // that character removed, except that it could be needed nowhere: skipping it is
            // covered by the moves above.)
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    const AUTH_ID: &str = "5a6d9a4c-0000-4000-8000-000000000001";
    const SESSION: &str = "0f0e0d0c-0000-4000-8000-00000000beef";

    fn acl(entries: &[&str]) -> Vec<String> {
        entries.iter().map(|s| s.to_string()).collect()
    }

    fn compiled(entries: &[&str]) -> CompiledAcl {
        CompiledAcl::compile(&acl(entries), AUTH_ID, SESSION)
    }

    /// Same as `CompiledAcl::compile`, but forcing the per-entry fallback
    /// representation, to check it agrees with the combined one.
    fn compiled_separate(entries: &[&str], auth_id: &str, session: &str) -> CompiledAcl {
        fn side(entries: Vec<&str>, auth_id: &str, session: &str, negative: bool) -> Side {
            let mut side = Side::build(entries.clone(), negative);
            // Every non-exact entry in its own regex, `me` / `my_session` entries included.
            side.bound.clear();
            let regexes: Vec<Regex> = entries
                .iter()
                .filter(|e| !is_exact(e))
                .map(|e| {
                    let pattern = entry_to_regex(e, auth_id, session);
                    compile_alternation(&[pattern], negative).unwrap()
                })
                .collect();
            side.patterns = if regexes.is_empty() {
                Patterns::Empty
            } else {
                Patterns::Separate(regexes)
            };
            side
        }
        let pos = entries.iter().copied().filter(|e| !e.starts_with('!'));
        let neg = entries.iter().filter_map(|e| e.strip_prefix('!'));
        let neg: Vec<&str> = neg.collect();
        CompiledAcl {
            program: Arc::new(AclProgram {
                acl: entries.iter().map(|e| e.to_string()).collect(),
                json: std::sync::OnceLock::new(),
                negative_entries: neg.iter().map(|e| e.to_string()).collect(),
                positive: side(pos.collect(), auth_id, session, false),
                negative: side(neg, auth_id, session, true),
                uses_auth_id: false,
                uses_session: false,
            }),
            auth_id: auth_id.into(),
            session_uuid: session.into(),
        }
    }

    /// The reference implementation (`acl/reference.rs`) on one required string.
    fn reference(
        entries: &[&str],
        auth_id: &str,
        session: &str,
        required: &str,
        python_dollar: bool,
    ) -> bool {
        reference::ReferenceAcl::compile(entries, auth_id, session, python_dollar)
            .expect("the reference compiles the test entries")
            .matches(required)
    }

    /// (acl, required, expected) with the default auth_id / session.
    const CASES: &[(&[&str], &str, bool)] = &[
        // Empty ACL denies everything.
        (&[], "", false),
        (&[], "auth.users.read", false),
        (&[], "#", false),
        // Exact entries, anchored on both sides.
        (&["auth.users.read"], "auth.users.read", true),
        (&["auth.users.read"], "auth.users.rea", false),
        (&["auth.users.read"], "auth.users.read.x", false),
        (&["auth.users.read"], "xauth.users.read", false),
        (&["auth.users.read"], "auth.users", false),
        (&["auth.users.read", "auth.tenants.read"], "auth.tenants.read", true),
        (&[""], "", true),
        (&[""], "a", false),
        // Case-sensitive.
        (&["auth.users.read"], "Auth.users.read", false),
        (&["auth.users.read"], "AUTH.USERS.READ", false),
        (&["Auth.*"], "auth.x", false),
        (&["auth.#"], "AUTH.x", false),
        (&["users.me.read"], "users.ME.read", false),
        // `.` in an entry is literal.
        (&["a.b"], "axb", false),
        (&["a.b"], "a.b", true),
        // `*`: zero or more chars, neither `.` nor `#`, within one segment.
        (&["auth.*.read"], "auth.users.read", true),
        (&["auth.*.read"], "auth.users.x.read", false),
        (&["a.*.b"], "a..b", true),
        (&["a.*.b"], "a.x#y.b", false),
        (&["a.*"], "a.", true),
        (&["a.*"], "a", false),
        (&["a*"], "abc", true),
        (&["a*"], "a", true),
        (&["a*"], "a.b", false),
        (&["a*"], "ba", false),
        (&["*"], "", true),
        (&["*"], "anything", true),
        (&["*"], "a.b", false),
        (&["*"], "a#b", false),
        (&["*a*"], "bab", true),
        (&["*a*"], "bbb", false),
        (&["auth.users.*"], "auth.users.123.read", false),
        (&["a.*.*.d"], "a.b.c.d", true),
        (&["a.*.*.d"], "a.b.d", false),
        (&["a.b*c"], "a.bxxc", true),
        (&["a.b*c"], "a.bc", true),
        (&["a.b*c"], "a.bx.c", false),
        // `#`: anything including dots, possibly nothing.
        (&["#"], "", true),
        (&["#"], "a", true),
        (&["#"], "auth.users.x.y.z", true),
        (&["#"], "!a", true),
        (&["#"], "a#b*c", true),
        (&["auth.#"], "auth.", true),
        (&["auth.#"], "auth.x", true),
        (&["auth.#"], "auth.x.y", true),
        (&["auth.#"], "auth", false),
        (&["auth.#"], "authx", false),
        (&["auth.#"], "dird.auth.x", false),
        (&["foo#"], "foobar.baz", true),
        (&["foo#"], "foo", true),
        (&["foo#"], "fo", false),
        (&["a.#.z"], "a.b.c.z", true),
        (&["a.#.z"], "a..z", true),
        (&["a.#.z"], "a.z", false),
        (&["#.read"], "auth.users.read", true),
        (&["#.read"], "auth.users.update", false),
        (&["auth.#.read"], "auth.users.read", true),
        // Negatives always win, whatever the order.
        (&["#", "!auth.users.read"], "auth.users.read", false),
        (&["!auth.users.read", "#"], "auth.users.read", false),
        (&["#", "!auth.users.read"], "auth.users.update", true),
        (&["#", "!auth.#"], "auth.x", false),
        (&["#", "!auth.#"], "confd.x", true),
        (&["#", "!#"], "", false),
        (&["#", "!#"], "a", false),
        (&["auth.users.read", "!auth.users.read"], "auth.users.read", false),
        (&["a.*", "!a.b"], "a.c", true),
        (&["a.*", "!a.b"], "a.b", false),
        (&["#", "!*"], "a", false),
        (&["#", "!*"], "a.b", true),
        (&["#", "!"], "", false),
        (&["#", "!"], "x", true),
        // Only negatives: nothing granted.
        (&["!a"], "b", false),
        (&["!a"], "a", false),
        // A `!` inside or doubled is literal.
        (&["a!b"], "a!b", true),
        (&["#", "!!x"], "!x", false),
        (&["#", "!!x"], "x", true),
        // `me` substitution (granted side only).
        (&["users.me.#"], "users.5a6d9a4c-0000-4000-8000-000000000001.x", true),
        (&["users.me.#"], "users.me.x", true),
        (&["users.me.#"], "users.someone-else.x", false),
        (&["users.me.read"], "users.5a6d9a4c-0000-4000-8000-000000000001.read", true),
        (&["users.5a6d9a4c-0000-4000-8000-000000000001.x"], "users.me.x", false),
        (&["users.5a6d9a4c-0000-4000-8000-000000000001.#"], "users.me.x", false),
        (&["me"], "5a6d9a4c-0000-4000-8000-000000000001", true),
        (&["me"], "me", true),
        (&["me.#"], "5a6d9a4c-0000-4000-8000-000000000001.tokens", true),
        (&["#.me"], "x.5a6d9a4c-0000-4000-8000-000000000001", true),
        (&["auth.users.me.tokens.read"], "auth.users.me.tokens.read", true),
        // Only whole segments are substituted.
        (&["users.me*.x"], "users.5a6d9a4c-0000-4000-8000-000000000001.x", false),
        (&["users.me*.x"], "users.meow.x", true),
        (&["users.mex.x"], "users.5a6d9a4c-0000-4000-8000-000000000001.x", false),
        (&["users.xme.x"], "users.x5a6d9a4c-0000-4000-8000-000000000001.x", false),
        (&["users.#me.x"], "users.5a6d9a4c-0000-4000-8000-000000000001.x", false),
        (&["users.Me.x"], "users.5a6d9a4c-0000-4000-8000-000000000001.x", false),
        // The substituted value fills exactly the segment.
        (&["users.me"], "users.5a6d9a4c-0000-4000-8000-000000000001x", false),
        (&["users.me"], "users.x5a6d9a4c-0000-4000-8000-000000000001", false),
        // `my_session` substitution.
        (&["sessions.my_session.delete"], "sessions.0f0e0d0c-0000-4000-8000-00000000beef.delete", true),
        (&["sessions.my_session.delete"], "sessions.my_session.delete", true),
        (&["sessions.my_session.delete"], "sessions.other.delete", false),
        (&["sessions.0f0e0d0c-0000-4000-8000-00000000beef.delete"], "sessions.my_session.delete", false),
        (&["sessions.my_session*.delete"], "sessions.0f0e0d0c-0000-4000-8000-00000000beef.delete", false),
        (&["sessions.my_session.delete"], "sessions.5a6d9a4c-0000-4000-8000-000000000001.delete", false),
        (&["sessions.me.delete"], "sessions.0f0e0d0c-0000-4000-8000-00000000beef.delete", false),
        (&["users.me.sessions.my_session.delete"], "users.5a6d9a4c-0000-4000-8000-000000000001.sessions.0f0e0d0c-0000-4000-8000-00000000beef.delete", true),
        // `edit` grants `update`, not the reverse.
        (&["auth.emails.x.confirm.edit"], "auth.emails.x.confirm.update", true),
        (&["auth.emails.x.confirm.edit"], "auth.emails.x.confirm.edit", true),
        (&["auth.emails.x.confirm.update"], "auth.emails.x.confirm.edit", false),
        (&["auth.emails.x.confirm.update"], "auth.emails.x.confirm.update", true),
        (&["edit.x"], "update.x", true),
        (&["a.edit*"], "a.update", false),
        (&["a.edits"], "a.update", false),
        (&["a.edit"], "a.updates", false),
        (&["a.edit"], "a.delete", false),
        (&["#", "!a.edit"], "a.update", false),
        (&["#", "!a.me"], "a.5a6d9a4c-0000-4000-8000-000000000001", false),
        (&["#", "!a.my_session"], "a.0f0e0d0c-0000-4000-8000-00000000beef", false),
        // Regex metacharacters in entries are literal.
        (&["a+b"], "a+b", true),
        (&["a+b"], "aab", false),
        (&["a+b"], "ab", false),
        (&["(x)"], "(x)", true),
        (&["(x)"], "x", false),
        (&["[y]"], "[y]", true),
        (&["[y]"], "y", false),
        (&["a$"], "a$", true),
        (&["a$"], "a", false),
        (&["^a"], "^a", true),
        (&["^a"], "a", false),
        (&["a\\b"], "a\\b", true),
        (&["a\\b"], "a\u{8}", false),
        (&["a\\d"], "a1", false),
        (&["a\\d"], "a\\d", true),
        (&["a?"], "a", false),
        (&["a?"], "a?", true),
        (&["a|b"], "a", false),
        (&["a|b"], "a|b", true),
        (&["a{2}"], "aa", false),
        (&["a{2}"], "a{2}", true),
        (&["a\\.*"], "a\\.x", true),
        (&["a\\.*"], "a\\x", false),
        (&["a\\*"], "a\\xyz", true),
        (&["a\\#"], "a\\x.y", true),
        (&["a\\#.me"], "a\\x.5a6d9a4c-0000-4000-8000-000000000001", true),
        (&["x.a b.y"], "x.a b.y", true),
        (&["x.a-b&c~d"], "x.a-b&c~d", true),
        (&["x.a-b&c~d*"], "x.a-b&c~d-e", true),
        (&["(x).*"], "(x).y", true),
        (&["(x).*"], "x.y", false),
        // The required string is literal: its `*` / `#` are plain chars.
        (&["a.b"], "a.*", false),
        (&["a.b"], "a.#", false),
        (&["a.b"], "#", false),
        (&["a.b.c"], "a.*.c", false),
        (&["a.*"], "a.*", true),
        (&["a.#"], "a.#", true),
        (&["a.*"], "a.#", false),
        (&["a.*.c"], "a.#.c", false),
        (&["a.*"], "a.#", false),
        (&["a.me"], "a.*", false),
        (&["*"], "#", false),
        (&["*"], "*", true),
        // Trailing newline: stricter than Python's `$`.
        (&["a.b"], "a.b\n", false),
        (&["a.#"], "a.b\n", false),
        (&["#"], "\n", false),
        (&["a.b", "a.b\n"], "a.b\n", true),
        // ...but negatives keep Python's `$`, so we never grant more.
        (&["a.*", "!a.b"], "a.b\n", false),
        (&["a.*", "!a.#"], "a.b\n", false),
        (&["a.*", "!a.c"], "a.b\n", true),
        (&["*", "!"], "\n", false),
        (&["*", "!a"], "a\n\n", true),
        (&["*", "!*"], "a\n", false),
        // `#` does not match a newline (non-DOTALL `.` in the original)...
        (&["a.#"], "a.b\nc", false),
        // ...while `*` does (`[^.#]` in the original).
        (&["a.*"], "a.b\n", true),
        (&["a.*.c"], "a.\n.c", true),
        // Non-ASCII.
        (&["é.*"], "é.ü", true),
        (&["é.*"], "e.u", false),
        (&["a.*"], "a.日本", true),
    ];

    #[test]
    fn acl_table() {
        for (i, (entries, required, expected)) in CASES.iter().enumerate() {
            let got = compiled(entries).matches(required);
            assert_eq!(
                got, *expected,
                "case {i}: acl {entries:?} required {required:?}"
            );
            let sep = compiled_separate(entries, AUTH_ID, SESSION).matches(required);
            assert_eq!(
                sep, *expected,
                "case {i} (separate): acl {entries:?} required {required:?}"
            );
            let reference = reference(entries, AUTH_ID, SESSION, required, false);
            assert_eq!(
                reference, *expected,
                "case {i} (reference): acl {entries:?} required {required:?}"
            );
        }
    }

    #[test]
    fn acl_table_python_dollar_difference_only_on_trailing_newline() {
        for (entries, required, _) in CASES {
            let strict = compiled(entries).matches(required);
            let python = reference(entries, AUTH_ID, SESSION, required, true);
            if !required.ends_with('\n') {
                assert_eq!(strict, python, "acl {entries:?} required {required:?}");
            } else if strict {
                assert!(python, "acl {entries:?} required {required:?}");
            }
        }
        assert!(reference(&["a.b"], AUTH_ID, SESSION, "a.b\n", true));
        assert!(!compiled(&["a.b"]).matches("a.b\n"));
    }

    #[test]
    fn auth_id_and_session_are_literal() {
        let cases: &[(&str, &str, &[&str], &str, bool)] = &[
            ("a.b", "s", &["users.me.x"], "users.a.b.x", true),
            ("a.b", "s", &["users.me.x"], "users.aXb.x", false),
            ("a+", "s", &["users.me"], "users.a+", true),
            ("a+", "s", &["users.me"], "users.aaa", false),
            (".*", "s", &["users.me"], "users.anything", false),
            (".*", "s", &["users.me"], "users..*", true),
            ("x)|(.*", "s", &["users.me"], "whatever", false),
            ("x)|(.*", "s", &["users.me"], "users.x)|(.*", true),
            ("(", "s", &["users.me"], "users.(", true),
            ("[", "s", &["users.me.#"], "users.[.x", true),
            ("\\", "s", &["users.me"], "users.\\", true),
            ("$", "s", &["users.me"], "users.$", true),
            ("u", "a.b", &["s.my_session"], "s.a.b", true),
            ("u", "a.b", &["s.my_session"], "s.aXb", false),
            ("u", "*", &["s.my_session"], "s.xyz", false),
            ("u", "*", &["s.my_session"], "s.*", true),
            ("u", "#", &["s.my_session"], "s.x.y", false),
            // Empty values give an alternative matching an empty segment.
            ("", "", &["users.me.x"], "users..x", true),
            ("", "", &["s.my_session"], "s.", true),
        ];
        for (auth_id, session, entries, required, expected) in cases {
            let got = CompiledAcl::compile(&acl(entries), auth_id, session).matches(required);
            assert_eq!(
                got, *expected,
                "auth_id {auth_id:?} session {session:?} acl {entries:?} required {required:?}"
            );
            let sep = compiled_separate(entries, auth_id, session).matches(required);
            assert_eq!(
                sep, *expected,
                "separate: {auth_id:?} {entries:?} {required:?}"
            );
        }
    }

    #[test]
    fn may_add_access() {
        let token = compiled(&["auth.policies.#", "confd.users.read", "!unauthorized"]);
        let cases: &[(&str, bool)] = &[
            // Checklist 64: beyond the caller => refused; negatives always allowed.
            ("confd.users.read", true),
            ("auth.policies.x.read", true),
            ("confd.users.create", false),
            ("#", false),
            ("auth.#", false),
            ("!anything", true),
            ("!#", true),
            ("!unauthorized", true),
            ("unauthorized", false),
            ("", false),
            ("!", true),
        ];
        for (access, expected) in cases {
            assert_eq!(
                token.may_add_access(access),
                *expected,
                "may_add {access:?}"
            );
        }
        assert!(compiled(&[]).may_add_access("!x"));
        assert!(!compiled(&[]).may_add_access("x"));
        assert!(compiled(&["#"]).may_add_access("anything.at.all"));
        assert!(!compiled(&["#", "!auth.#"]).may_add_access("auth.x"));
    }

    #[test]
    fn may_remove_access() {
        let token = compiled(&["auth.policies.#", "confd.users.read", "!unauthorized"]);
        let cases: &[(&str, bool)] = &[
            // Checklist 65/66: removing `!unauthorized` by a token holding
            // `!unauthorized` is refused; removing a matched positive is fine.
            ("!unauthorized", false),
            ("unauthorized", false),
            ("confd.users.read", true),
            ("!confd.users.read", true),
            ("confd.users.create", false),
            ("!confd.users.create", false),
            ("auth.policies.1.read", true),
            ("!auth.policies.1.read", true),
            // Only one leading `!` is removed.
            ("!!confd.users.read", false),
        ];
        for (access, expected) in cases {
            assert_eq!(
                token.may_remove_access(access),
                *expected,
                "may_remove {access:?}"
            );
        }
        assert!(compiled(&["#"]).may_remove_access("!anything"));
        assert!(compiled(&["#"]).may_remove_access("!!x"));
        assert!(!compiled(&[]).may_remove_access("!x"));
    }

    #[test]
    fn optional_required_access() {
        assert!(compiled(&[]).matches_optional(None));
        assert!(compiled(&["!#"]).matches_optional(None));
        assert!(!compiled(&[]).matches_optional(Some("")));
        assert!(compiled(&["#"]).matches_optional(Some("")));
    }

    /// Compiles alone below `MAX_PATTERN_LEN` but exceeds the regex size
    /// limit (`*#` cannot be collapsed).
    fn too_big_for_regex(prefix: &str) -> String {
        let entry = format!("{prefix}{}", "*#".repeat(6_000));
        let pattern = entry_to_regex(&entry, "", "");
        assert!(pattern.body.len() <= MAX_PATTERN_LEN);
        assert!(compile_alternation(&[pattern], false).is_none());
        entry
    }

    #[test]
    fn uncompilable_positive_entries_are_skipped() {
        let too_long = format!("x.{}", "a*".repeat(MAX_PATTERN_LEN));
        let too_big = too_big_for_regex("y.");
        let entries = vec![
            too_long.clone(),
            too_big.clone(),
            "a.b".to_string(),
            "c.*".to_string(),
            "d.#".to_string(),
        ];
        let token = CompiledAcl::compile(&entries, AUTH_ID, SESSION);
        assert!(matches!(
            token.program.positive.patterns,
            Patterns::Combined(_)
        ));
        assert!(token.matches("a.b"));
        assert!(token.matches("c.x"));
        assert!(token.matches("d.x.y"));
        for denied in [
            "zzz", "", "*", "x.a", "x.ab", "y.", "y.x", &too_long, &too_big,
        ] {
            assert!(!token.matches(denied), "{denied:?}");
        }

        let only_bad = CompiledAcl::compile(&[too_long, too_big], AUTH_ID, SESSION);
        assert!(matches!(
            only_bad.program.positive.patterns,
            Patterns::Empty
        ));
        assert!(!only_bad.matches(""));
        assert!(!only_bad.matches("x.y"));
        assert!(!only_bad.matches("y.y"));
    }

    #[test]
    fn uncompilable_negative_entries_deny_their_prefix() {
        let too_long = format!("!auth.{}", "*a".repeat(MAX_PATTERN_LEN));
        let too_big = format!("!{}", too_big_for_regex("confd.users.me.x"));
        let entries = vec!["#".to_string(), too_long, too_big, "!calld.*".to_string()];
        let token = CompiledAcl::compile(&entries, AUTH_ID, SESSION);
        assert_eq!(
            token.program.negative.deny_prefixes,
            ["auth.", "confd.users."]
        );
        assert!(token.matches("dird.x"));
        assert!(token.matches("auth"));
        assert!(token.matches("confd.users"));
        assert!(token.matches("calld.x.y"));
        assert!(!token.matches("calld.x"));
        assert!(!token.matches("auth.x"));
        assert!(!token.matches("auth."));
        assert!(!token.matches("confd.users.x"));
        // A wildcard at the very start: the prefix is empty, everything is denied.
        let all = CompiledAcl::compile(
            &["#".to_string(), format!("!{}", too_big_for_regex(""))],
            AUTH_ID,
            SESSION,
        );
        assert!(!all.matches(""));
        assert!(!all.matches("x"));
    }

    #[test]
    fn huge_runs_of_wildcards_are_collapsed() {
        let entry = format!("a.{}.{}.b", "*".repeat(1_000_000), "#".repeat(1_000_000));
        assert_eq!(entry_to_regex(&entry, "", "").body, r"a\.[^.#]*\..*\.b");
        let token = CompiledAcl::compile(&[entry], AUTH_ID, SESSION);
        assert!(token.matches("a.x.y.z.b"));
        assert!(token.matches("a...b"));
        assert!(!token.matches("a.x.y"));
        assert!(!token.matches("a.x#.y.b"));
    }

    #[test]
    fn many_entries_fall_back_to_separate_regexes() {
        // Each entry compiles alone, but not all of them together.
        let entries: Vec<String> = (0..3)
            .map(|i| format!("e{i}.{}", "*#".repeat(2_500)))
            .collect();
        let token = CompiledAcl::compile(&entries, AUTH_ID, SESSION);
        assert!(
            matches!(token.program.positive.patterns, Patterns::Separate(ref v) if v.len() == 3)
        );
        assert!(token.matches("e0.x"));
        assert!(token.matches("e2.y.y"));
        assert!(!token.matches("e3.x"));
        assert!(!token.matches("x"));

        // Dropping the too-big entry lets the others be combined again.
        let mut entries = vec!["a.*".to_string(), "b.#".to_string()];
        entries.push(too_big_for_regex("c."));
        let token = CompiledAcl::compile(&entries, AUTH_ID, SESSION);
        assert!(matches!(
            token.program.positive.patterns,
            Patterns::Combined(_)
        ));
        assert!(token.matches("a.x"));
        assert!(token.matches("b.x.y"));
        assert!(!token.matches("c.x"));
    }

    #[test]
    fn patterns_are_deduplicated() {
        let token = compiled(&["a.*", "a.*", "b.#", "a.b", "a.b"]);
        assert!(token.matches("a.x"));
        assert!(token.matches("b.x"));
        assert!(token.matches("a.b"));
    }

    #[test]
    fn exact_entries_use_the_hash_set() {
        let token = compiled(&["a.b", "c.*", "users.me", "x.edit", "s.my_session", "!n.o"]);
        assert!(token.program.positive.exact.contains("a.b"));
        assert_eq!(token.program.positive.exact.len(), 1);
        assert!(token.program.negative.exact.contains("n.o"));
        assert!(matches!(
            token.program.positive.patterns,
            Patterns::Combined(_)
        ));
        assert!(matches!(token.program.negative.patterns, Patterns::Empty));
    }

    #[test]
    fn compiled_acl_is_send_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<CompiledAcl>();
    }

    /// Differential test against the literal transcription of the Python
    /// algorithm, on pseudo-random entries and required strings.
    #[test]
    fn random_agreement_with_reference() {
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        const PIECES: &[&str] = &[
            "a",
            "b",
            ".",
            ".",
            "*",
            "#",
            "me",
            "edit",
            "update",
            "my_session",
            "u1",
            "s1",
            "\\",
            "\n",
            "!",
            "(",
            "$",
            "ab",
        ];
        let gen = |max: u64, next: &mut dyn FnMut() -> u64| {
            let n = next() % (max + 1);
            (0..n)
                .map(|_| PIECES[(next() % PIECES.len() as u64) as usize])
                .collect::<String>()
        };
        for _ in 0..2_000 {
            let n_entries = next() % 4;
            let entries: Vec<String> = (0..n_entries).map(|_| gen(6, &mut next)).collect();
            let refs: Vec<&str> = entries.iter().map(|s| s.as_str()).collect();
            let token = CompiledAcl::compile(&entries, "u1", "s1");
            let sep = compiled_separate(&refs, "u1", "s1");
            for _ in 0..8 {
                let required = gen(6, &mut next);
                let expected = reference(&refs, "u1", "s1", &required, false);
                assert_eq!(
                    token.matches(&required),
                    expected,
                    "acl {refs:?} required {required:?}"
                );
                assert_eq!(
                    sep.matches(&required),
                    expected,
                    "separate: acl {refs:?} required {required:?}"
                );
                // Never more than the original (Python's `$` everywhere).
                if expected {
                    assert!(reference(&refs, "u1", "s1", &required, true));
                }
            }
            // Entries matched against themselves and against each other.
            for required in &refs {
                let expected = reference(&refs, "u1", "s1", required, false);
                assert_eq!(
                    token.matches(required),
                    expected,
                    "acl {refs:?} required {required:?}"
                );
            }
        }
    }

    /// The escalation guard: an added entry must not grant what the caller's negative entries
    /// deny it.
    #[test]
    fn may_add_access_refuses_what_negative_entries_deny() {
        let a = compiled(&["confd.#", "!confd.secret.#", "auth.policies.#"]);
        assert!(
            !a.may_add_access("confd.#"),
            "would grant confd.secret.read"
        );
        assert!(
            !a.may_add_access("confd.*.read"),
            "would grant confd.secret.read"
        );
        assert!(!a.may_add_access("confd.*.x"));
        assert!(!a.may_add_access("confd.secret.read"));
        assert!(a.may_add_access("confd.users.read"));
        assert!(a.may_add_access("confd.users.*"));
        assert!(a.may_add_access("confd.users.#"));
        assert!(a.may_add_access("!confd.anything"));
        assert!(!a.may_add_access("other.read"), "not held at all");
        // Reserved segments count as any text (conservative).
        let b = compiled(&["confd.#", "!confd.users.x.#"]);
        assert!(!b.may_add_access("confd.users.me.read"));
        assert!(b.may_add_access("confd.groups.me.read"));
        // A negative entry also denies its text followed by a newline (Python's `$`); found by
        // the acl_match fuzz target.
        let d = compiled(&["*", "!"]);
        assert!(
            !d.may_add_access("*\n"),
            "would grant \"\\n\", denied by `!`"
        );
        // Without negative entries, the original's rule is unchanged.
        let c = compiled(&["confd.#"]);
        assert!(c.may_add_access("confd.#"));
        assert!(c.may_add_access("confd.*.read"));
    }

    /// `patterns_overlap` against brute force: every string over a small alphabet up to
    /// length 5, matched with the entries' regex translation (`#` is `.*`: no newline).
    #[test]
    fn patterns_overlap_agrees_with_brute_force() {
        let mut state: u64 = 0x2545_F491_4F6C_DD1D;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        const PIECES: &[&str] = &["a", "x", ".", "*", "#", "\n"];
        const ALPHABET: &[char] = &['a', 'x', '.', '\n'];
        let mut strings = vec![String::new()];
        let mut frontier = vec![String::new()];
        for _ in 0..5 {
            let mut grown = Vec::new();
            for s in &frontier {
                for c in ALPHABET {
                    grown.push(format!("{s}{c}"));
                }
            }
            strings.extend(grown.iter().cloned());
            frontier = grown;
        }
        let regex_of = |p: &str| {
            let body: String = p
                .chars()
                .map(|c| match c {
                    '*' => "[^.#]*".to_string(),
                    '#' => ".*".to_string(),
                    c => regex::escape(&c.to_string()),
                })
                .collect();
            Regex::new(&format!("^(?:{body})$")).unwrap()
        };
        let mut overlapping = 0;
        for _ in 0..2000 {
            let mut gen = || {
                let n = next() % 4;
                (0..n)
                    .map(|_| PIECES[(next() % PIECES.len() as u64) as usize])
                    .collect::<String>()
            };
            let (p, q) = (gen(), gen());
            let (rp, rq) = (regex_of(&p), regex_of(&q));
            let brute = strings.iter().any(|s| rp.is_match(s) && rq.is_match(s));
            assert_eq!(patterns_overlap(&p, &q), brute, "{p:?} vs {q:?}");
            overlapping += usize::from(brute);
        }
        assert!(overlapping > 200 && overlapping < 1800, "{overlapping}");
    }

    /// `me` / `my_session` entries are matched without a regex (`Bound`): the same answers as
    /// their regex translation, on multi-byte text, newlines and values holding wildcards and
    /// dots.
    #[test]
    fn bound_entries_agree_with_their_regex() {
        let mut state: u64 = 0x1234_5678_9ABC_DEF1;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        const PIECES: &[&str] = &[
            "a",
            ".",
            ".",
            "*",
            "#",
            "me",
            "my_session",
            "edit",
            "update",
            "é",
            "ü.",
            "\n",
            "x",
        ];
        const VALUES: &[&str] = &["", "é", "a.b", "*", "#", "\n", "me", "ééx"];
        let gen = |max: u64, next: &mut dyn FnMut() -> u64| {
            let n = next() % (max + 1);
            (0..n)
                .map(|_| PIECES[(next() % PIECES.len() as u64) as usize])
                .collect::<String>()
        };
        for _ in 0..1_500 {
            let auth_id = VALUES[(next() % VALUES.len() as u64) as usize];
            let session = VALUES[(next() % VALUES.len() as u64) as usize];
            let mut entries: Vec<String> = (0..1 + next() % 3)
                .map(|_| format!("{}.me.{}", gen(3, &mut next), gen(3, &mut next)))
                .collect();
            if next() % 2 == 0 {
                entries.push(format!(
                    "!{}my_session{}",
                    gen(2, &mut next),
                    gen(2, &mut next)
                ));
            }
            let refs: Vec<&str> = entries.iter().map(|s| s.as_str()).collect();
            let token = CompiledAcl::compile(&entries, auth_id, session);
            let regex = compiled_separate(&refs, auth_id, session);
            let mut candidates: Vec<String> = (0..6).map(|_| gen(8, &mut next)).collect();
            candidates.extend(entries.iter().map(|e| e.replace("me", auth_id)));
            candidates.extend(entries.iter().map(|e| e.replace("my_session", session)));
            for required in &candidates {
                for required in [required.clone(), format!("{required}\n")] {
                    assert_eq!(
                        token.matches(&required),
                        regex.matches(&required),
                        "acl {refs:?} auth_id {auth_id:?} session {session:?} required {required:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_interner_shares_programs_between_tokens() {
        let interner = AclInterner::default();
        let acl_a = acl(&["confd.users.me.read", "auth.sessions.my_session.#", "!x.*"]);
        let acl_b = acl(&["confd.users.me.read"]);
        let a1 = interner.compile(&acl_a, "u1", "s1");
        let a2 = interner.compile(&acl_a, "u2", "s2");
        let b1 = interner.compile(&acl_b, "u1", "s1");
        assert!(Arc::ptr_eq(a1.program(), a2.program()));
        assert!(!Arc::ptr_eq(a1.program(), b1.program()));
        assert_eq!(interner.live(), 2);
        assert!(a1.matches("confd.users.u1.read") && !a1.matches("confd.users.u2.read"));
        assert!(a2.matches("confd.users.u2.read") && !a2.matches("confd.users.u1.read"));
        assert!(a1.matches("auth.sessions.s1.x") && !a1.matches("auth.sessions.s2.x"));
        assert!(a2.matches("auth.sessions.s2.x") && !a2.matches("x.y"));
        // An unused value is not kept.
        assert!(b1.session_uuid.is_empty());
        // Dead programs are dropped, and swept when the map grows: a churn of distinct ACLs
        // does not grow it.
        drop((a1, a2, b1));
        assert_eq!(interner.live(), 0);
        for i in 0..3 * MIN_SWEEP {
            let one = interner.compile(&[format!("e{i}.me")], "u", "s");
            assert!(one.matches(&format!("e{i}.u")));
            assert!(interner.len() <= MIN_SWEEP, "{}", interner.len());
        }
        // With many live ones, at most twice as many as were live at the last sweep.
        let kept: Vec<CompiledAcl> = (0..3 * MIN_SWEEP)
            .map(|i| interner.compile(&[format!("k{i}.me")], "u", "s"))
            .collect();
        assert_eq!(interner.live(), kept.len());
        assert!(interner.len() <= 4 * MIN_SWEEP, "{}", interner.len());
        let again = interner.compile(&acl_a, "u3", "s3");
        assert!(again.matches("confd.users.u3.read"));
    }

    #[test]
    fn huge_bound_entries_fail_closed() {
        let long = format!("a.me.{}", "x".repeat(1 << 11));
        let required = format!("a.u.{}", "x".repeat(1 << 11));
        let token = CompiledAcl::compile(std::slice::from_ref(&long), "u", "s");
        assert!(token.matches(&required), "within the budget");
        let huge_required = format!("a.u.{}", "x".repeat(MAX_BOUND_WORK / long.len()));
        assert!(!token.matches(&huge_required), "positive: grants nothing");
        let negative = CompiledAcl::compile(&["#".to_string(), format!("!{long}")], "u", "s");
        assert!(
            !negative.matches(&huge_required),
            "negative: denies its prefix"
        );
        assert!(negative.matches(&format!("b{huge_required}")));
    }
}
