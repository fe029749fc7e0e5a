//! The tenant tree in memory: every tenant's parent, the children of each and the top tenant,
//! read from `auth_tenant` in one query and kept until a trigger on that table announces a
//! change ([`crate::notify::Notification::TenantsChanged`], migration V8). The scope decisions
//! of the storage ([`Storage::is_subtenant`], [`Storage::tenant_and_descendants`],
//! [`Storage::top_tenant_uuid`]) answer from it, so a token check with `?tenant=` and a scoped
//! listing cost no tenant query.
//!
//! The same rules as the other caches: only used while live (changes being received), dropped
//! when it stops and starts, and a load during which a change arrived is not kept (it still
//! answers the requests that waited for it, being as recent as a query of theirs would be). A
//! process's own tenant writes drop it at once ([`Storage::tenants_changed`]); those of other
//! processes when their notification arrives.
//!
//! Loads are single-flight: one at a time, and a request that waited for a load started after
//! it arrived takes that load's tree instead of loading again, so a burst of requests after a
//! change costs one or two queries, not one each.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use crate::error::Result;
use crate::sql::Db;
use crate::storage::Storage;

/// The most ancestors followed up from a tenant (as the SQL of [`Storage::is_subtenant`]): a
/// cycle written by hand in the table cannot make a check loop.
pub const MAX_DEPTH: usize = 1000;

/// The most tenants kept in memory; beyond, the tree is not kept and every decision is a query.
pub const MAX_TENANTS: usize = 200_000;

/// No parent in the table (impossible with the foreign key; kept for a tree built by hand).
const NONE: u32 = u32::MAX;

/// One snapshot of the tenant tree.
#[derive(Debug, Default)]
pub struct Tree {
    /// Tenant uuids, by index.
    uuids: Vec<Box<str>>,
    index: HashMap<Box<str>, u32>,
    /// The parent of each tenant ([`NONE`] when not in the table).
    parent: Vec<u32>,
    /// The children of tenant `i` are `children[child_start[i]..child_start[i + 1]]` (the top
    /// tenant is not its own child).
    child_start: Vec<u32>,
    children: Vec<u32>,
    /// The top tenant (its own parent; the smallest uuid if the table holds several).
    top: Option<u32>,
}

impl Tree {
    /// The tree of `(uuid, parent uuid)` rows (a uuid given twice: the last row counts).
    pub fn from_rows<I>(rows: I) -> Tree
    where
        I: IntoIterator<Item = (String, String)>,
    {
        let mut uuids: Vec<Box<str>> = Vec::new();
        let mut parents: Vec<String> = Vec::new();
        let mut index: HashMap<Box<str>, u32> = HashMap::new();
        for (uuid, parent) in rows {
            let uuid: Box<str> = uuid.into();
            if let Some(&i) = index.get(&uuid) {
                parents[i as usize] = parent;
                continue;
            }
            let Ok(i) = u32::try_from(uuids.len()) else {
                break;
            };
            if i == NONE {
                break;
            }
            index.insert(uuid.clone(), i);
            uuids.push(uuid);
            parents.push(parent);
        }
        let parent: Vec<u32> = parents
            .iter()
            .map(|p| index.get(p.as_str()).copied().unwrap_or(NONE))
            .collect();
        // Children index (counting sort by parent).
        let n = uuids.len();
        let mut counts = vec![0u32; n + 1];
        for (i, &p) in parent.iter().enumerate() {
            if p != NONE && p as usize != i {
                counts[p as usize + 1] += 1;
            }
        }
        for i in 0..n {
            counts[i + 1] += counts[i];
        }
        let child_start = counts.clone();
        let mut next = counts;
        let mut children = vec![0u32; child_start[n] as usize];
        for (i, &p) in parent.iter().enumerate() {
            if p != NONE && p as usize != i {
                let slot = &mut next[p as usize];
                children[*slot as usize] = i as u32;
                *slot += 1;
            }
        }
        let top = (0..n)
            .filter(|&i| parent[i] as usize == i)
            .min_by(|&a, &b| uuids[a].cmp(&uuids[b]))
            .map(|i| i as u32);
        Tree {
            uuids,
            index,
            parent,
            child_start,
            children,
            top,
        }
    }

    /// Number of tenants.
    pub fn len(&self) -> usize {
        self.uuids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.uuids.is_empty()
    }

    /// Whether `uuid` is a tenant.
    pub fn contains(&self, uuid: &str) -> bool {
        self.index.contains_key(uuid)
    }

    /// The top tenant (the one that is its own parent).
    pub fn top(&self) -> Option<&str> {
        self.top.map(|i| &*self.uuids[i as usize])
    }

    /// The parent of `uuid`, if it is a tenant.
    pub fn parent(&self, uuid: &str) -> Option<&str> {
        let &i = self.index.get(uuid)?;
        match self.parent[i as usize] {
            NONE => None,
            p => Some(&self.uuids[p as usize]),
        }
    }

    /// Whether `child` is a tenant and is `parent` or one of its descendants; a tenant that is
    /// its own parent sees every tenant. Ancestors are followed [`MAX_DEPTH`] steps at most.
    /// `None` when either is not in this tree (the caller asks the database: it may be newer).
    pub fn is_subtenant(&self, child: &str, parent: &str) -> Option<bool> {
        let &c = self.index.get(child)?;
        let &p = self.index.get(parent)?;
        if self.parent[p as usize] == p {
            return Some(true);
        }
        let mut at = c;
        for _ in 0..=MAX_DEPTH {
            if at == p {
                return Some(true);
            }
            let up = self.parent[at as usize];
            if up == NONE || up == at {
                return Some(false);
            }
            at = up;
        }
        Some(false)
    }

    /// `tenant` and all its descendants, `tenant` first then level by level (each once, also
    /// around a cycle). `None` when `tenant` is not in this tree.
    pub fn descendants(&self, tenant: &str) -> Option<Vec<String>> {
        let &start = self.index.get(tenant)?;
        let mut seen = vec![false; self.uuids.len()];
        let mut queue = VecDeque::from([start]);
        seen[start as usize] = true;
        let mut out = Vec::new();
        while let Some(i) = queue.pop_front() {
            out.push(self.uuids[i as usize].to_string());
            let (from, to) = (
                self.child_start[i as usize] as usize,
                self.child_start[i as usize + 1] as usize,
            );
            for &c in &self.children[from..to] {
                if !seen[c as usize] {
                    seen[c as usize] = true;
                    queue.push_back(c);
                }
            }
        }
        Some(out)
    }
}

/// The outcome of a load: the tree, `None` when too large to keep.
type Loaded = Result<Option<Arc<Tree>>>;

/// What is known of the table.
#[derive(Clone)]
enum Current {
    /// Nothing loaded (or dropped since).
    Unknown,
    Loaded(Arc<Tree>),
    /// More than [`MAX_TENANTS`]: not kept, every decision is a query until the next change.
    TooLarge,
}

/// The process's tenant tree, shared by its storages ([`Storage::with_tenant_tree`]) and fed by
/// the listener (through [`super::Caches`]).
pub struct TenantTree {
    current: RwLock<Current>,
    /// Whether tenant changes are being received.
    live: AtomicBool,
    /// Bumped by every change and every stop and start.
    epoch: AtomicU64,
    /// Loads started so far (the sequence number of the last one).
    loads_started: AtomicU64,
    /// Held during a load; the last load's sequence number and outcome (a failure too: the
    /// requests that waited for it share it rather than each trying again in turn).
    loading: tokio::sync::Mutex<Option<(u64, Loaded)>>,
}

impl Default for TenantTree {
    fn default() -> Self {
        TenantTree {
            current: RwLock::new(Current::Unknown),
            live: AtomicBool::new(false),
            epoch: AtomicU64::new(0),
            loads_started: AtomicU64::new(0),
            loading: tokio::sync::Mutex::new(None),
        }
    }
}

impl TenantTree {
    fn read(&self) -> Current {
        // Only assignments run under this lock: a poisoned lock holds a consistent value.
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Current> {
        self.current.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether tenant changes are being received (when not, the tree is not used).
    pub fn is_live(&self) -> bool {
        self.live.load(Ordering::Acquire)
    }

    /// Changes are received from now on: drops anything loaded before, then serves from memory.
    pub fn start(&self) {
        self.invalidate();
        self.live.store(true, Ordering::Release);
    }

    /// Changes may be missed from now on: stops serving from memory and drops the tree.
    pub fn stop(&self) {
        self.live.store(false, Ordering::Release);
        self.invalidate();
    }

    /// Some tenant was created, deleted or moved: drops the tree, and no load under way keeps
    /// what it read.
    pub fn invalidate(&self) {
        // Bumped before taking the lock (see `get`).
        self.epoch.fetch_add(1, Ordering::AcqRel);
        *self.write() = Current::Unknown;
    }

    /// Whether a tree is loaded now (for tests and metrics).
    pub fn is_loaded(&self) -> bool {
        matches!(self.read(), Current::Loaded(_))
    }

    /// The tree to decide from: `None` when it is not used (not live, or too large), loaded
    /// with `storage` when not in memory.
    pub async fn get(&self, storage: &Storage) -> Loaded {
        if !self.is_live() {
            return Ok(None);
        }
        match self.read() {
            Current::Loaded(tree) => return Ok(Some(tree)),
            Current::TooLarge => return Ok(None),
            Current::Unknown => {}
        }
        let arrived = self.loads_started.load(Ordering::Acquire);
        let mut last = self.loading.lock().await;
        match self.read() {
            Current::Loaded(tree) => return Ok(Some(tree)),
            Current::TooLarge => return Ok(None),
            Current::Unknown => {}
        }
        // A load that started after this request arrived read a table at least as recent as a
        // query of its own would: take its tree (kept or not), or its failure.
        if let Some((seq, outcome)) = last.as_ref() {
            if *seq > arrived {
                return outcome.clone();
            }
        }
        if !self.is_live() {
            return Ok(None);
        }
        let seq = self.loads_started.fetch_add(1, Ordering::AcqRel) + 1;
        let outcome = self.load(storage).await;
        *last = Some((seq, outcome.clone()));
        outcome
    }

    /// Reads the table (under `loading`), and keeps the tree unless a change arrived meanwhile.
    async fn load(&self, storage: &Storage) -> Loaded {
        let epoch = self.epoch.load(Ordering::Acquire);
        let rows = {
            let client = storage.client().await?;
            let limit = i64::try_from(MAX_TENANTS)
                .unwrap_or(i64::MAX)
                .saturating_add(1);
            client
                .fetch(
                    "SELECT uuid, parent_uuid FROM auth_tenant LIMIT $1",
                    &[&limit],
                )
                .await?
        };
        let tree = (rows.len() <= MAX_TENANTS).then(|| {
            Arc::new(Tree::from_rows(
                rows.iter()
                    .map(|r| (r.get::<_, String>(0), r.get::<_, String>(1))),
            ))
        });
        if tree.is_none() {
            log::warn!(
                "more than {MAX_TENANTS} tenants: the tenant tree is not kept in memory, \
                 every scope decision queries the database"
            );
        }
        {
            // Compared under the lock that `invalidate` takes after bumping the epoch: a change
            // that arrived during the read may not be in it.
            let mut current = self.write();
            if self.is_live() && self.epoch.load(Ordering::Acquire) == epoch {
                *current = match &tree {
                    Some(t) => Current::Loaded(t.clone()),
                    None => Current::TooLarge,
                };
            }
        }
        Ok(tree)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    /// top → {a → {a1 → a11, a2}, b}
    fn sample() -> Tree {
        Tree::from_rows(rows(&[
            ("a1", "a"),
            ("top", "top"),
            ("a", "top"),
            ("b", "top"),
            ("a11", "a1"),
            ("a2", "a"),
        ]))
    }

    fn sorted(mut v: Vec<String>) -> Vec<String> {
        v.sort();
        v
    }

    #[test]
    fn ancestry() {
        let t = sample();
        assert_eq!(t.len(), 6);
        for (child, parent) in [
            ("a11", "a11"),
            ("a11", "a1"),
            ("a11", "a"),
            ("a11", "top"),
            ("a2", "a"),
            ("a", "a"),
            ("b", "top"),
            ("top", "top"),
        ] {
            assert_eq!(
                t.is_subtenant(child, parent),
                Some(true),
                "{child} {parent}"
            );
        }
        for (child, parent) in [
            ("a", "a1"),
            ("a", "a11"),
            ("b", "a"),
            ("a11", "b"),
            ("a2", "a1"),
            ("top", "a"),
            ("top", "b"),
        ] {
            assert_eq!(
                t.is_subtenant(child, parent),
                Some(false),
                "{child} {parent}"
            );
        }
        assert_eq!(t.parent("a11"), Some("a1"));
        assert_eq!(t.parent("top"), Some("top"));
        assert_eq!(t.parent("zz"), None);
    }

    #[test]
    fn descendants() {
        let t = sample();
        let all = t.descendants("top").unwrap();
        assert_eq!(all[0], "top", "the tenant itself first");
        assert_eq!(sorted(all), ["a", "a1", "a11", "a2", "b", "top"]);
        let a = t.descendants("a").unwrap();
        assert_eq!(a[0], "a");
        assert_eq!(sorted(a), ["a", "a1", "a11", "a2"]);
        assert_eq!(t.descendants("a11").unwrap(), ["a11"]);
        assert_eq!(t.descendants("b").unwrap(), ["b"]);
    }

    #[test]
    fn unknown_tenants_are_left_to_the_database() {
        let t = sample();
        assert!(!t.contains("nope"));
        assert_eq!(t.is_subtenant("nope", "top"), None);
        assert_eq!(t.is_subtenant("a", "nope"), None);
        assert_eq!(t.is_subtenant("nope", "nope"), None);
        assert_eq!(t.is_subtenant("a\0", "top"), None);
        assert_eq!(t.descendants("nope"), None);
        assert_eq!(t.descendants(""), None);
    }

    #[test]
    fn top_tenant() {
        assert_eq!(sample().top(), Some("top"));
        assert_eq!(Tree::from_rows(rows(&[("x", "y")])).top(), None);
        assert_eq!(Tree::default().top(), None);
        assert!(Tree::default().is_empty());
        // Several tenants that are their own parent (not made by the server): the smallest, as
        // a stable choice; each sees every tenant.
        let t = Tree::from_rows(rows(&[("m2", "m2"), ("m1", "m1"), ("c", "m2")]));
        assert_eq!(t.top(), Some("m1"));
        assert_eq!(t.is_subtenant("c", "m1"), Some(true));
        assert_eq!(t.is_subtenant("m2", "m1"), Some(true));
        assert_eq!(t.is_subtenant("m1", "m2"), Some(true));
    }

    #[test]
    fn cycles_terminate() {
        // x → y → z → x, not linked to the top; w under x.
        let t = Tree::from_rows(rows(&[
            ("top", "top"),
            ("x", "y"),
            ("y", "z"),
            ("z", "x"),
            ("w", "x"),
        ]));
        assert_eq!(t.is_subtenant("w", "z"), Some(true));
        assert_eq!(t.is_subtenant("x", "y"), Some(true));
        assert_eq!(t.is_subtenant("x", "w"), Some(false));
        assert_eq!(t.is_subtenant("x", "top"), Some(true), "the top sees all");
        assert_eq!(sorted(t.descendants("x").unwrap()), ["w", "x", "y", "z"]);
        assert_eq!(t.descendants("top").unwrap(), ["top"]);
        // A self-loop is a top tenant, not a cycle.
        let t = Tree::from_rows(rows(&[("s", "s"), ("c", "s")]));
        assert_eq!(t.descendants("s").unwrap(), ["s", "c"]);
    }

    #[test]
    fn depth_is_bounded() {
        // A chain deeper than the bound: an ancestor beyond it is not found (as the SQL).
        let n = MAX_DEPTH + 10;
        let mut r = vec![("t0".to_string(), "t0".to_string())];
        for i in 1..=n {
            r.push((format!("t{i}"), format!("t{}", i - 1)));
        }
        let t = Tree::from_rows(r);
        assert_eq!(t.is_subtenant(&format!("t{n}"), "t0"), Some(true), "top");
        assert_eq!(
            t.is_subtenant(&format!("t{n}"), &format!("t{}", n - MAX_DEPTH)),
            Some(true)
        );
        assert_eq!(
            t.is_subtenant(&format!("t{n}"), &format!("t{}", n - MAX_DEPTH - 1)),
            Some(false)
        );
        assert_eq!(t.descendants("t1").unwrap().len(), n);
        // A long cycle: bounded as well.
        let m = 3 * MAX_DEPTH;
        let mut r: Vec<(String, String)> = (0..m)
            .map(|i| (format!("c{i}"), format!("c{}", (i + 1) % m)))
            .collect();
        r.push(("top".into(), "top".into()));
        let t = Tree::from_rows(r);
        assert_eq!(t.is_subtenant("c0", "c1"), Some(true));
        assert_eq!(t.is_subtenant("c0", &format!("c{}", m - 1)), Some(false));
        assert_eq!(t.descendants("c5").unwrap().len(), m);
    }

    #[test]
    fn dangling_parents_and_duplicates() {
        // A parent not in the table (no foreign key in a hand-made table) ends the walk.
        let t = Tree::from_rows(rows(&[("top", "top"), ("o", "gone"), ("o2", "o")]));
        assert_eq!(t.parent("o"), None);
        assert_eq!(t.is_subtenant("o2", "o"), Some(true));
        assert_eq!(t.is_subtenant("o2", "top"), Some(true));
        assert_eq!(t.descendants("o").unwrap(), ["o", "o2"]);
        // The last row of a uuid counts.
        let t = Tree::from_rows(rows(&[
            ("top", "top"),
            ("a", "top"),
            ("b", "a"),
            ("b", "top"),
        ]));
        assert_eq!(t.len(), 3);
        assert_eq!(t.parent("b"), Some("top"));
        assert_eq!(t.descendants("a").unwrap(), ["a"]);
    }

    #[test]
    fn many_tenants() {
        // 10 000 tenants: ten under the root, then ten under each (n9999 → n998 → n98 → n8).
        let mut r = vec![("root".to_string(), "root".to_string())];
        for i in 0..10_000 {
            let parent = if i < 10 {
                "root".to_string()
            } else {
                format!("n{}", i / 10 - 1)
            };
            r.push((format!("n{i}"), parent));
        }
        let t = Tree::from_rows(r);
        assert_eq!(t.len(), 10_001);
        assert_eq!(t.descendants("root").unwrap().len(), 10_001);
        assert_eq!(t.is_subtenant("n9999", "n8"), Some(true));
        assert_eq!(t.is_subtenant("n9999", "n98"), Some(true));
        assert_eq!(t.is_subtenant("n9999", "n0"), Some(false));
        let under_n8 = t.descendants("n8").unwrap();
        assert!(under_n8.iter().any(|u| u == "n9999"));
        assert!(!under_n8.iter().any(|u| u == "n0"));
    }

    #[test]
    fn not_used_unless_live() {
        let cache = TenantTree::default();
        assert!(!cache.is_live());
        assert!(!cache.is_loaded());
        cache.start();
        assert!(cache.is_live());
        *cache.write() = Current::Loaded(Arc::new(sample()));
        assert!(cache.is_loaded());
        cache.invalidate();
        assert!(!cache.is_loaded());
        *cache.write() = Current::Loaded(Arc::new(sample()));
        cache.stop();
        assert!(!cache.is_live());
        assert!(!cache.is_loaded(), "dropped when stopped");
    }

    #[tokio::test]
    async fn no_query_unless_live_and_kept_small() {
        // A storage whose database does not exist: any query would fail.
        let storage = Storage::new("postgresql://nobody@127.0.0.1:1/none", 1).unwrap();
        let cache = TenantTree::default();
        assert!(cache.get(&storage).await.unwrap().is_none(), "not live");
        cache.start();
        *cache.write() = Current::TooLarge;
        assert!(cache.get(&storage).await.unwrap().is_none(), "too large");
        *cache.write() = Current::Loaded(Arc::new(sample()));
        let tree = cache.get(&storage).await.unwrap().unwrap();
        assert_eq!(tree.top(), Some("top"));
        cache.invalidate();
        assert!(cache.get(&storage).await.is_err(), "loads after a change");
    }
}
