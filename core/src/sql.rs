//! SQL building shared by the list queries: one WHERE builder (with the rule for NUL in text
//! filters, once) and the ORDER BY / LIMIT / OFFSET of a page. Column names only ever come from
//! the callers' whitelists; values are always parameters.

use tokio_postgres::types::ToSql;

/// Ordering and pagination of a list. `order` must come from the endpoint's whitelist
/// (checked again here: anything else sorts by the default column).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub order: String,
    pub descending: bool,
    pub limit: Option<i64>,
    pub offset: i64,
}

impl Page {
    pub fn sql(&self, columns: &[(&str, &str)], tie_break: &str) -> String {
        let column = columns
            .iter()
            .find(|(name, _)| *name == self.order)
            .unwrap_or(&columns[0])
            .1;
        let dir = if self.descending { "DESC" } else { "ASC" };
        let mut out = format!(" ORDER BY {column} {dir}, {tie_break} {dir}");
        if let Some(l) = self.limit {
            out.push_str(&format!(" LIMIT {}", l.max(0)));
        }
        out.push_str(&format!(" OFFSET {}", self.offset.max(0)));
        out
    }
}

/// A WHERE clause under construction, with its parameters.
#[derive(Default)]
pub struct Where {
    conds: Vec<String>,
    params: Vec<Box<dyn ToSql + Sync + Send>>,
}

impl Where {
    pub fn param<T: ToSql + Sync + Send + 'static>(&mut self, v: T) -> String {
        self.params.push(Box::new(v));
        format!("${}", self.params.len())
    }

    /// Adds `template` with every `{}` replaced by a parameter holding `value`. A value holding
    /// NUL can match nothing stored (PostgreSQL text cannot contain it): the condition is FALSE.
    pub fn text(&mut self, template: &str, value: &str) {
        if value.contains('\0') {
            self.conds.push("FALSE".into());
        } else {
            let p = self.param(value.to_string());
            self.conds.push(template.replace("{}", &p));
        }
    }

    pub fn raw(&mut self, cond: String) {
        self.conds.push(cond);
    }

    pub fn sql(&self) -> String {
        if self.conds.is_empty() {
            "TRUE".into()
        } else {
            self.conds.join(" AND ")
        }
    }

    pub fn refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_in_a_text_filter_matches_nothing() {
        let mut w = Where::default();
        w.text("a = {}", "x");
        w.text("b = {}", "y\0");
        assert_eq!(w.sql(), "a = $1 AND FALSE");
        assert_eq!(w.refs().len(), 1);
        assert_eq!(Where::default().sql(), "TRUE");
    }
}
