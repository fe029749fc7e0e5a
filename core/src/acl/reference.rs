//! Reference ACL matcher: a literal transcription of the original Python string operations, one
//! regex per entry, no optimisation. The differential test of `acl.rs` and the `acl_match` fuzz
//! target (`fuzz/`) check [`CompiledAcl`](super::CompiledAcl) against it. Compiled only for tests
//! and fuzzing builds (`cfg(fuzzing)`); not an API.

use regex::Regex;

/// A reference ACL: every entry as its own anchored regex.
#[derive(Debug)]
pub struct ReferenceAcl {
    positives: Vec<Regex>,
    negatives: Vec<Regex>,
}

impl ReferenceAcl {
    /// Transcribes the original (Python 3.7+ `re.escape`, `str.replace`, `str.split('\\.')`,
    /// sequential `ReservedWord.replace`). Negative entries always use Python's `$` (also matching
    /// before a trailing newline); positive ones only with `python_dollar` (which gives the
    /// original's exact behaviour). Substituted values are escaped (our documented deviation).
    /// `None` when an entry's regex cannot be compiled (size limit), where the compiled matcher
    /// deliberately behaves differently (it skips, or denies the entry's literal prefix).
    pub fn compile(
        entries: &[&str],
        auth_id: &str,
        session: &str,
        python_dollar: bool,
    ) -> Option<ReferenceAcl> {
        fn py_escape(s: &str) -> String {
            const SPECIAL: &str = "()[]{}?*+-|^$\\.&~# \t\n\r\u{b}\u{c}";
            let mut out = String::new();
            for c in s.chars() {
                if SPECIAL.contains(c) {
                    out.push('\\');
                }
                out.push(c);
            }
            out
        }
        let to_regex = |access: &str, python_dollar: bool| {
            let r = py_escape(access)
                .replace("\\*", "[^.#]*?")
                .replace("\\#", ".*?");
            let mut words: Vec<String> = r.split("\\.").map(str::to_string).collect();
            for (word, value) in [
                ("me", regex::escape(auth_id)),
                ("my_session", regex::escape(session)),
                ("edit", "update".to_string()),
            ] {
                for w in words.iter_mut() {
                    if w == word {
                        *w = format!("({word}|{value})");
                    }
                }
            }
            let end = if python_dollar { r"\n?\z" } else { r"\z" };
            Regex::new(&format!(r"\A(?:{}){}", words.join("\\."), end)).ok()
        };
        let negatives = entries
            .iter()
            .filter_map(|e| e.strip_prefix('!'))
            .map(|e| to_regex(e, true))
            .collect::<Option<Vec<Regex>>>()?;
        let positives = entries
            .iter()
            .filter(|e| !e.starts_with('!'))
            .map(|e| to_regex(e, python_dollar))
            .collect::<Option<Vec<Regex>>>()?;
        Some(ReferenceAcl {
            positives,
            negatives,
        })
    }

    /// True when `required` is granted: no negative entry matches and a positive one does.
    pub fn matches(&self, required: &str) -> bool {
        !self.negatives.iter().any(|re| re.is_match(required))
            && self.positives.iter().any(|re| re.is_match(required))
    }
}
