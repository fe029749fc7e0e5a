//! The bus publisher (issue 13) against a real RabbitMQ (tests/src/rabbitmq.rs): the rows of the
//! outbox (`auth_event_outbox`, written here by SQL) are published as wazo-bus publishes an event
//! (exchange, routing key, headers with `origin_uuid` and `timestamp`, body, content type,
//! delivery mode), in order, deleted once confirmed; nothing is lost when the broker is stopped
//! or killed, or when the publishing server is killed; two servers on one database publish each
//! row once; the outbox bound drops old rows with a metric; a bad `amqp.uri` is a clear startup
//! error.
//!
//! A broker takes seconds to boot: the tests that leave it running share one ([`shared`]), each
//! with an exchange of its own; the outage test has its own.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use wazo_auth_tests::rabbitmq::{Broker, Consumer, Received};
use wazo_auth_tests::serde_json::{json, Value};
use wazo_auth_tests::*;

fn shared() -> &'static Broker {
    wazo_auth_tests::rabbitmq::shared_broker()
}

fn unique_exchange(what: &str) -> String {
    format!("wazo-auth-test-{what}-{}-{}", std::process::id(), next_id())
}

/// A server (with the admin user, for the metrics) publishing to `uri` / `exchange`.
fn bus_server(uri: &str, exchange: &str) -> ServerBuilder {
    ServerBuilder::new().with_wazo_user().config(json!({
        "uuid": "the-origin-uuid",
        "amqp": {"uri": uri, "exchange_name": exchange, "exchange_type": "topic"},
    }))
}

/// The headers of test event `seq` as the event writers store them.
fn event_headers(tag: &str, seq: u32) -> Value {
    json!({
        "name": "auth_test_event",
        "tenant_uuid": format!("tenant-{tag}"),
        "user_uuid:*": true,
        "required_access": "event.auth_test_event",
        "required_acl": format!("events.auth.test.{tag}.{seq}"),
        "seq": seq,
    })
}

fn insert_sql(tag: &str, seqs: impl IntoIterator<Item = u32>, created_at: Option<&str>) -> String {
    let values: Vec<String> = seqs
        .into_iter()
        .map(|seq| {
            let created = created_at.map_or("clock_timestamp()".to_string(), |t| format!("'{t}'"));
            format!(
                "('auth_test_event', 'auth.test.{tag}.{seq}', '{}', '{}', {created})",
                event_headers(tag, seq),
                json!({"seq": seq, "tag": tag, "nothing": null}),
            )
        })
        .collect();
    format!(
        "INSERT INTO auth_event_outbox (name, routing_key, headers, data, created_at) VALUES {}",
        values.join(", ")
    )
}

/// Inserts events `seqs` of `tag`, one transaction.
fn insert_events(db: &str, tag: &str, seqs: impl IntoIterator<Item = u32>) {
    sql(db, &insert_sql(tag, seqs, None));
}

/// The test events still in the outbox (the server's own, e.g. the admin's logins, are not
/// counted).
fn outbox_count(db: &str) -> i64 {
    sql(
        db,
        "SELECT count(*) FROM auth_event_outbox WHERE name = 'auth_test_event'",
    )[0][0]
        .as_deref()
        .unwrap_or("0")
        .parse()
        .unwrap()
}

fn wait_until(what: &str, limit: Duration, f: impl Fn() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "{what}: not after {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Message `m` is test event `seq` of `tag` as wazo-bus would publish it: its routing key, its
/// headers plus `origin_uuid` and `timestamp`, and a body of those headers plus the data.
fn assert_test_event(m: &Received, tag: &str, seq: u32) {
    assert_eq!(m.routing_key, format!("auth.test.{tag}.{seq}"));
    let mut expected = event_headers(tag, seq).as_object().unwrap().clone();
    expected.insert("origin_uuid".into(), json!("the-origin-uuid"));
    let timestamp = m.headers["timestamp"]
        .as_str()
        .expect("timestamp")
        .to_string();
    expected.insert("timestamp".into(), json!(timestamp));
    assert_eq!(
        Value::Object(m.headers.clone()),
        Value::Object(expected.clone())
    );
    // The body: every header plus the data.
    let mut body = expected;
    body.insert(
        "data".into(),
        json!({"seq": seq, "tag": tag, "nothing": null}),
    );
    assert_eq!(m.body, Value::Object(body));
}

fn seq_of(m: &Received) -> u32 {
    m.body["data"]["seq"].as_u64().expect("data.seq") as u32
}

/// The value of the sample `name` with `labels` in a Prometheus text exposition.
fn metric(text: &str, name: &str, labels: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| {
            let (series, _) = l.rsplit_once(' ').unwrap_or((l, ""));
            series == format!("{name}{labels}") || (labels.is_empty() && series == name)
        })
        .and_then(|l| l.rsplit_once(' ')?.1.parse().ok())
}

fn scrape(s: &Server, admin: &str) -> String {
    let r = s.call("GET", "/0.1/metrics", admin, None, None);
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

/// Waits until this server is connected to the broker (it then has declared the exchange).
fn wait_connected(s: &Server) {
    s.wait_log(Duration::from_secs(30), |log| {
        log.contains("bus: connected to the AMQP broker")
    });
}

#[test]
fn rows_are_published_as_wazo_bus_events_in_order_then_deleted() {
    let broker = shared();
    let exchange = unique_exchange("shape");
    let s = bus_server(&broker.uri(), &exchange).start();
    wait_connected(&s);
    // Declared by the server as wazo-bus declares it: a consumer declaring it durable, of type
    // topic, is accepted (RabbitMQ refuses an inequivalent declaration).
    let consumer = Consumer::bind(&broker.uri(), &exchange, "topic", "auth.test.#");
    let db = s.db.clone();
    // The admin's login is itself an event (auth_session_created): log in first and let it be
    // published, so the counter below counts only this test's rows.
    let admin = s.admin_token();
    wait_until(
        "the login's event is published",
        Duration::from_secs(10),
        || sql(&db, "SELECT count(*) FROM auth_event_outbox")[0][0].as_deref() == Some("0"),
    );
    // The counter moves just after the rows are deleted.
    std::thread::sleep(Duration::from_millis(300));
    let before = metric(&scrape(&s, &admin), "wazo_auth_bus_published_total", "").unwrap_or(0.0);

    // Two rows of known times (the server runs with TZ=UTC): Python's isoformat() drops a zero
    // fraction.
    sql(
        &db,
        &insert_sql("shape", [1], Some("2024-05-01 10:02:03.25+00")),
    );
    sql(
        &db,
        &insert_sql("shape", [2], Some("2024-05-01 10:02:04+00")),
    );
    for first in (3..60).step_by(10) {
        insert_events(&db, "shape", first..first + 10);
    }
    let read = consumer.read_until(Duration::from_secs(30), Duration::from_secs(10), |r| {
        r.len() >= 62
    });
    let seqs: Vec<u32> = read.iter().map(seq_of).collect();
    assert_eq!(seqs, (1..=62).collect::<Vec<_>>(), "in order, each once");

    for m in &read {
        let seq = seq_of(m);
        assert_eq!(m.exchange, exchange);
        assert_eq!(m.content_type.as_deref(), Some("application/json"));
        assert_eq!(m.content_encoding.as_deref(), Some("utf-8"));
        assert_eq!(m.delivery_mode, Some(2), "persistent");
        assert_test_event(m, "shape", seq);
        // AMQP types as py-amqp sends them.
        use wazo_auth_tests::rabbitmq::json_of;
        let raw = m.raw_headers.inner();
        let get = |k: &str| raw.get(k).cloned();
        assert!(matches!(get("origin_uuid"), Some(v) if json_of(&v) == json!("the-origin-uuid")));
        assert_eq!(
            format!("{:?}", get("user_uuid:*")),
            "Some(Boolean(true))",
            "a boolean header"
        );
        assert!(format!("{:?}", get("timestamp")).contains("LongString"));
    }
    assert_eq!(read[0].headers["timestamp"], "2024-05-01T10:02:03.250000");
    assert_eq!(read[1].headers["timestamp"], "2024-05-01T10:02:04");
    let now_ish = read[10].headers["timestamp"].as_str().unwrap();
    assert!(
        now_ish.len() == 26 || now_ish.len() == 19,
        "a local ISO time: {now_ish}"
    );

    // Deleted once confirmed.
    wait_until("the outbox empties", Duration::from_secs(10), || {
        outbox_count(&db) == 0
    });
    wait_until("metrics", Duration::from_secs(10), || {
        let m = scrape(&s, &admin);
        metric(&m, "wazo_auth_bus_published_total", "") == Some(before + 62.0)
            && metric(&m, "wazo_auth_bus_outbox_events", "") == Some(0.0)
            && metric(&m, "wazo_auth_bus_connected", "") == Some(1.0)
            && metric(&m, "wazo_auth_bus_publisher", "") == Some(1.0)
    });
    assert_eq!(s.request("HEAD", "/0.1/status", &[], None).status, 200);
}

#[test]
fn two_servers_on_one_database_publish_each_row_once_and_take_over() {
    let broker = shared();
    let exchange = unique_exchange("pair");
    let db = fresh_database();
    let mut a = bus_server(&broker.uri(), &exchange).database(&db).start();
    let mut b = bus_server(&broker.uri(), &exchange).database(&db).start();
    // One of them publishes.
    wait_until("a publisher", Duration::from_secs(30), || {
        a.log().contains("this process publishes") || b.log().contains("this process publishes")
    });
    std::thread::sleep(Duration::from_secs(2));
    let a_leads = a.log().contains("this process publishes");
    let b_leads = b.log().contains("this process publishes");
    assert!(
        a_leads != b_leads,
        "exactly one publisher (a: {a_leads}, b: {b_leads})"
    );
    let consumer = Consumer::bind(&broker.uri(), &exchange, "topic", "auth.test.#");

    // Phase 1: 200 rows in 20 transactions, each published exactly once, in order.
    for first in (1..=200).step_by(10) {
        insert_events(&db, "pair", first..first + 10);
    }
    let read = consumer.read_until(Duration::from_secs(30), Duration::from_secs(10), |r| {
        r.len() >= 200
    });
    let seqs: Vec<u32> = read.iter().map(seq_of).collect();
    assert_eq!(seqs, (1..=200).collect::<Vec<_>>());
    assert!(
        consumer.next(Duration::from_secs(2)).is_none(),
        "no duplicate"
    );

    // Phase 2: rows keep coming while the publisher is killed (kill -9): the other server takes
    // over; nothing is lost (at least once: a batch in flight may come twice).
    let (leader, follower) = if a_leads {
        (&mut a, &mut b)
    } else {
        (&mut b, &mut a)
    };
    insert_events(&db, "pair", 201..=400);
    unsafe {
        libc::kill(leader.pid() as i32, libc::SIGKILL);
    }
    leader.stop();
    insert_events(&db, "pair", 401..=600);
    follower.wait_log(Duration::from_secs(30), |log| {
        log.contains("this process publishes")
    });
    let read = consumer.read_until(Duration::from_secs(60), Duration::from_secs(15), |r| {
        let seen: std::collections::BTreeSet<u32> = r.iter().map(seq_of).collect();
        seen.len() >= 400
    });
    let mut counts: BTreeMap<u32, u32> = BTreeMap::new();
    for m in &read {
        *counts.entry(seq_of(m)).or_default() += 1;
    }
    let missing: Vec<u32> = (201..=600).filter(|s| !counts.contains_key(s)).collect();
    assert!(missing.is_empty(), "lost: {missing:?}");
    let duplicates: u32 = counts.values().map(|c| c - 1).sum();
    assert!(
        duplicates <= 500,
        "{duplicates} duplicates: more than one batch"
    );
    // First deliveries in order.
    let mut firsts = Vec::new();
    for m in &read {
        let seq = seq_of(m);
        if !firsts.contains(&seq) {
            firsts.push(seq);
        }
    }
    let mut sorted = firsts.clone();
    sorted.sort();
    assert_eq!(firsts, sorted, "in order");
    wait_until("the outbox empties", Duration::from_secs(10), || {
        outbox_count(&db) == 0
    });
}

#[test]
fn broker_outage_and_crash_lose_nothing_and_slow_nothing() {
    let mut broker = Broker::start();
    let exchange = unique_exchange("outage");
    let s = bus_server(&broker.uri(), &exchange).start();
    wait_connected(&s);
    let mut consumer = Consumer::bind(&broker.uri(), &exchange, "topic", "auth.test.#");
    let db = s.db.clone();
    let admin = s.admin_token();
    insert_events(&db, "outage", 1..=5);
    let read = consumer.read_until(Duration::from_secs(20), Duration::from_secs(10), |r| {
        r.len() >= 5
    });
    assert_eq!(
        read.iter().map(seq_of).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5]
    );

    // ---- the broker stopped: the server answers as fast as ever, events accumulate ----
    broker.stop();
    s.wait_log(Duration::from_secs(20), |log| {
        log.contains("lost the AMQP broker") || log.contains("is unavailable")
    });
    for round in 0..5 {
        let start = Instant::now();
        let token = s.alice_token(json!({}));
        let r = s.request("GET", &format!("/0.1/token/{token}"), &[], None);
        assert_eq!(r.status, 200);
        // A user without a password: its event is written all the same, and the round times
        // what the broker could slow, not a password hash (0.3 s here, and rounds of 0.6 s with
        // the machine twice as slow: too close to the 2 s bound on a slower, loaded one).
        let r = s.call(
            "POST",
            "/0.1/users",
            &admin,
            None,
            Some(&json!({"username": format!("outage-{round}")})),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(s.request("HEAD", "/0.1/status", &[], None).status, 200);
        let took = start.elapsed();
        assert!(took < Duration::from_secs(2), "round {round} took {took:?}");
        insert_events(&db, "outage", 6 + round * 10..16 + round * 10);
    }
    wait_until("the backlog metric", Duration::from_secs(10), || {
        let m = scrape(&s, &admin);
        // The test's 50 events, and the logins' own.
        let all: f64 = sql(&db, "SELECT count(*) FROM auth_event_outbox")[0][0]
            .as_deref()
            .unwrap_or("0")
            .parse()
            .unwrap();
        all >= 50.0
            && metric(&m, "wazo_auth_bus_outbox_events", "") == Some(all)
            && metric(&m, "wazo_auth_bus_connected", "") == Some(0.0)
    });
    assert_eq!(outbox_count(&db), 50);

    // ---- the broker back: every event goes out, in order ----
    broker.restart();
    consumer.reconnect(Duration::from_secs(30));
    let read = consumer.read_until(Duration::from_secs(60), Duration::from_secs(20), |r| {
        r.len() >= 50
    });
    let seqs: Vec<u32> = read.iter().map(seq_of).collect();
    assert_eq!(seqs, (6..=55).collect::<Vec<_>>());
    wait_until("the outbox empties", Duration::from_secs(10), || {
        outbox_count(&db) == 0
    });

    // ---- the broker killed (kill -9) while publishing: nothing lost ----
    wait_connected(&s);
    const N: u32 = 3000;
    insert_events(&db, "outage", 1001..1001 + N);
    // Wait until publishing has begun, then crash the broker.
    wait_until("publishing begins", Duration::from_secs(20), || {
        outbox_count(&db) < i64::from(N)
    });
    broker.kill();
    let left = outbox_count(&db);
    assert!(
        left > 0,
        "the crash came after the publishing: test nothing"
    );
    broker.restart();
    consumer.reconnect(Duration::from_secs(30));
    let read = consumer.read_until(Duration::from_secs(120), Duration::from_secs(20), |r| {
        let seen: std::collections::BTreeSet<u32> = r.iter().map(seq_of).collect();
        seen.len() as u32 >= N
    });
    let seen: std::collections::BTreeSet<u32> = read.iter().map(seq_of).collect();
    let missing: Vec<u32> = (1001..1001 + N).filter(|s| !seen.contains(s)).collect();
    assert!(
        missing.is_empty(),
        "{} lost (outbox held {left} at the crash): {:?}",
        missing.len(),
        &missing[..missing.len().min(20)]
    );
    wait_until("the outbox empties", Duration::from_secs(20), || {
        outbox_count(&db) == 0
    });
}

#[test]
fn publishing_server_killed_after_commit_publishes_at_next_start() {
    let broker = shared();
    let exchange = unique_exchange("restart");
    let db = fresh_database();
    // A server that cannot reach any broker: the rows wait.
    let closed = format!("amqp://guest:guest@127.0.0.1:{}/", free_port());
    let mut s = bus_server(&closed, &exchange).database(&db).start();
    insert_events(&db, "restart", 1..=20);
    unsafe {
        libc::kill(s.pid() as i32, libc::SIGKILL);
    }
    s.stop();
    assert_eq!(outbox_count(&db), 20);
    let consumer = Consumer::bind(&broker.uri(), &exchange, "topic", "auth.test.#");
    let _s = bus_server(&broker.uri(), &exchange).database(&db).start();
    let read = consumer.read_until(Duration::from_secs(30), Duration::from_secs(15), |r| {
        r.len() >= 20
    });
    assert_eq!(
        read.iter().map(seq_of).collect::<Vec<_>>(),
        (1..=20).collect::<Vec<_>>()
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn the_outbox_bound_drops_old_rows_with_a_warning_and_a_metric() {
    // No broker at all: nothing is published, the bound keeps the outbox small.
    let closed = format!("amqp://guest:guest@127.0.0.1:{}/", free_port());
    let s = bus_server(&closed, "xivo")
        .config(json!({"bus": {"outbox_max_age": 3600, "outbox_max_rows": 10}}))
        .start();
    let db = s.db.clone();
    let admin = s.admin_token();
    // Logins and checks are not slowed by the missing broker.
    let start = Instant::now();
    for _ in 0..5 {
        let token = s.alice_token(json!({}));
        assert_eq!(
            s.request("GET", &format!("/0.1/token/{token}"), &[], None)
                .status,
            200
        );
    }
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(s.request("HEAD", "/0.1/status", &[], None).status, 200);

    // The logins above wrote their own events (`auth_session_created`): out of the way, so
    // that the oldest row is the test's (the age bound looks at the oldest id).
    sql(&db, "DELETE FROM auth_event_outbox");
    sql(
        &db,
        &insert_sql("bound", 1..=5, Some("2000-01-01 00:00:00+00")),
    );
    insert_events(&db, "bound", 6..=20);
    wait_until("the bound", Duration::from_secs(15), || {
        outbox_count(&db) == 10
    });
    let kept: Vec<String> = sql(
        &db,
        "SELECT data->>'seq' FROM auth_event_outbox ORDER BY id",
    )
    .into_iter()
    .map(|r| r[0].clone().unwrap())
    .collect();
    assert_eq!(kept, (11..=20).map(|s| s.to_string()).collect::<Vec<_>>());
    wait_until("the metrics", Duration::from_secs(10), || {
        let m = scrape(&s, &admin);
        metric(&m, "wazo_auth_bus_outbox_dropped_total", "{reason=\"age\"}") == Some(5.0)
            && metric(
                &m,
                "wazo_auth_bus_outbox_dropped_total",
                "{reason=\"rows\"}",
            ) == Some(5.0)
            && metric(&m, "wazo_auth_bus_outbox_events", "") == Some(10.0)
            && metric(&m, "wazo_auth_bus_connected", "") == Some(0.0)
    });
    let log = s.log();
    assert!(log.contains("bus.outbox_max_age"), "{log}");
    assert!(log.contains("bus.outbox_max_rows"), "{log}");
    assert!(log.contains("(amqp.uri) is unavailable"), "{log}");
}

#[test]
fn amqp_configuration_errors_are_clear_and_null_disables_the_bus() {
    for (uri, expected) in [
        ("http://localhost:5672/", "unknown scheme"),
        ("amqps://localhost/", "amqps"),
        ("localhost:5672", "amqp.uri"),
        ("amqp://localhost:70000/", "not a valid URI"),
    ] {
        let started = Instant::now();
        let e = ServerBuilder::new()
            .config(json!({"amqp": {"uri": uri}}))
            .try_start()
            .err()
            .unwrap_or_else(|| panic!("{uri}: started"));
        assert!(e.contains("\"amqp.uri\""), "{uri}: {e}");
        assert!(e.contains(expected), "{uri}: {e}");
        assert!(started.elapsed() < Duration::from_secs(20));
    }
    let e = ServerBuilder::new()
        .config(json!({"amqp": {"uri": "amqp://u:s3cret@:5672/"}}))
        .try_start()
        .err()
        .expect("no host");
    assert!(e.contains("\"amqp.uri\"") && !e.contains("s3cret"), "{e}");
    let e = ServerBuilder::new()
        .config(json!({"amqp": {"exchange_type": ""}}))
        .try_start()
        .err()
        .expect("empty exchange type");
    assert!(e.contains("\"amqp.exchange_type\""), "{e}");
    let e = ServerBuilder::new()
        .config(json!({"amqp": {"url": "amqp://localhost/"}}))
        .try_start()
        .err()
        .expect("unknown key");
    assert!(e.contains("amqp.url"), "{e}");
    let e = ServerBuilder::new()
        .config(json!({"bus": {"outbox_max_rows": 0}}))
        .try_start()
        .err()
        .expect("bad bound");
    assert!(e.contains("bus.outbox_max_rows"), "{e}");

    // An unknown host is no startup error: the server runs, the log names the key.
    let s = ServerBuilder::new()
        .config(json!({"amqp": {"uri": "amqp://guest:guest@no-such-host.invalid:5672/"}}))
        .start();
    s.wait_log(Duration::from_secs(20), |log| {
        log.contains("amqp://no-such-host.invalid:5672/%2F (amqp.uri) is unavailable")
    });
    assert!(!s.log().contains("guest:guest"));

    // `amqp.uri: null`: no publisher; the rows stay (within the bound).
    let s = ServerBuilder::new()
        .config(json!({"amqp": {"uri": null}}))
        .start();
    s.wait_log(Duration::from_secs(10), |log| {
        log.contains("no amqp.uri: bus events are not published")
    });
    let db = s.db.clone();
    insert_events(&db, "null", 1..=3);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(outbox_count(&db), 3);
}

/// The message named `name` (the first one), from what the consumer read.
fn named<'a>(read: &'a [Received], name: &str, key: &str) -> &'a Received {
    read.iter()
        .find(|m| {
            m.headers.get("name").and_then(Value::as_str) == Some(name) && m.routing_key == key
        })
        .unwrap_or_else(|| {
            let seen: Vec<(&str, &str)> = read
                .iter()
                .map(|m| {
                    (
                        m.headers.get("name").and_then(Value::as_str).unwrap_or(""),
                        m.routing_key.as_str(),
                    )
                })
                .collect();
            panic!("no {name} on {key}; received {seen:?}")
        })
}

/// What every event carries, whatever its kind: wazo-bus's headers, repeated in the body beside
/// `data`, the message properties, and the exchange.
fn assert_envelope(m: &Received, exchange: &str, tenant: &str, data: &Value) {
    let name = m.headers["name"].as_str().unwrap_or_default().to_string();
    assert_eq!(m.exchange, exchange);
    assert_eq!(m.headers["origin_uuid"], "the-origin-uuid", "{m:?}");
    assert_eq!(m.headers["tenant_uuid"], tenant, "{m:?}");
    assert_eq!(m.headers["required_access"], format!("event.{name}"));
    assert_eq!(
        m.headers["required_acl"],
        format!("events.{}", m.routing_key)
    );
    assert!(
        m.headers["timestamp"]
            .as_str()
            .is_some_and(|t| t.len() >= 19),
        "{m:?}"
    );
    assert_eq!(m.content_type.as_deref(), Some("application/json"));
    assert_eq!(m.delivery_mode, Some(2));
    let mut body = m.headers.clone();
    body.insert("data".into(), data.clone());
    assert_eq!(
        m.body,
        Value::Object(body),
        "the body is the headers plus data"
    );
}

#[test]
fn http_changes_arrive_on_the_exchange_as_the_originals_events() {
    let broker = shared();
    let exchange = unique_exchange("e2e");
    // Bound before the server starts: nothing it publishes is missed.
    let consumer = Consumer::bind(&broker.uri(), &exchange, "topic", "auth.#");
    let s = bus_server(&broker.uri(), &exchange).start();
    let admin = s.admin_token();
    let top: String = sql(
        &s.db,
        "SELECT uuid FROM auth_tenant WHERE uuid = parent_uuid",
    )[0][0]
        .clone()
        .unwrap();

    // A tenant created, renamed, then deleted.
    let r = s.call(
        "POST",
        "/0.1/tenants",
        &admin,
        None,
        Some(&json!({"name": "bus-tenant", "slug": "bus_tenant"})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let tenant = r.json()["uuid"].as_str().unwrap().to_string();
    let r = s.call(
        "PUT",
        &format!("/0.1/tenants/{tenant}"),
        &admin,
        None,
        Some(&json!({"name": "bus-tenant-renamed"})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    // A login whose auth id is not a UUID (the example backend's `alice`), then its logout.
    let login = s.login(
        "alice",
        "alice-secret",
        json!({"backend": "example_static"}),
    );
    assert_eq!(login.status, 200, "{}", login.body);
    let token = login.json()["data"]["token"].as_str().unwrap().to_string();
    let session = login.json()["data"]["session_uuid"]
        .as_str()
        .unwrap()
        .to_string();
    let alice_tenant = login.json()["data"]["metadata"]["tenant_uuid"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| top.clone());
    assert_eq!(
        s.request("DELETE", &format!("/0.1/token/{token}"), &[], None)
            .status,
        200
    );
    let r = s.call(
        "DELETE",
        &format!("/0.1/tenants/{tenant}"),
        &admin,
        None,
        None,
    );
    assert_eq!(r.status, 204, "{}", r.body);

    let read = consumer.read_until(Duration::from_secs(30), Duration::from_secs(5), |r| {
        r.iter()
            .any(|m| m.routing_key == format!("auth.tenants.{tenant}.deleted"))
    });

    let added = named(
        &read,
        "auth_tenant_added",
        &format!("auth.tenants.{tenant}.created"),
    );
    assert_eq!(added.headers["user_uuid:*"], true);
    assert_envelope(
        added,
        &exchange,
        &tenant,
        &json!({"uuid": tenant, "name": "bus-tenant", "slug": "bus_tenant", "domain_names": []}),
    );
    let updated = named(
        &read,
        "auth_tenant_updated",
        &format!("auth.tenants.{tenant}.updated"),
    );
    assert_envelope(
        updated,
        &exchange,
        &tenant,
        &json!({"uuid": tenant, "name": "bus-tenant-renamed"}),
    );
    let created = named(
        &read,
        "auth_session_created",
        &format!("auth.sessions.{session}.created"),
    );
    assert!(
        !created.headers.keys().any(|k| k.starts_with("user_uuid:")),
        "no user header for a non-UUID auth id: {created:?}"
    );
    assert_envelope(
        created,
        &exchange,
        &alice_tenant,
        &json!({"uuid": session, "tenant_uuid": alice_tenant, "user_uuid": null, "mobile": false}),
    );
    let ended = named(
        &read,
        "auth_session_deleted",
        &format!("auth.sessions.{session}.deleted"),
    );
    assert_eq!(ended.body["data"]["uuid"], session.as_str());
    assert_eq!(ended.headers["tenant_uuid"], alice_tenant.as_str());
    let deleted = named(
        &read,
        "auth_tenant_deleted",
        &format!("auth.tenants.{tenant}.deleted"),
    );
    assert_envelope(deleted, &exchange, &tenant, &json!({"uuid": tenant}));

    // In the order of the changes.
    let position = |key: String| read.iter().position(|m| m.routing_key == key).unwrap();
    let order = [
        position(format!("auth.tenants.{tenant}.created")),
        position(format!("auth.tenants.{tenant}.updated")),
        position(format!("auth.sessions.{session}.created")),
        position(format!("auth.sessions.{session}.deleted")),
        position(format!("auth.tenants.{tenant}.deleted")),
    ];
    let mut sorted = order;
    sorted.sort();
    assert_eq!(order, sorted, "published in the order of the changes");
}

/// Inserts one row of `auth_event_outbox_batch` (migrations/V17, the purge's) holding test
/// events `seqs` of `tag`, in order, as the purge writes them.
fn insert_batch(db: &str, tag: &str, seqs: std::ops::RangeInclusive<u32>) {
    sql(
        db,
        &format!(
            "INSERT INTO auth_event_outbox_batch (name, events, event_count)
             SELECT 'auth_test_event', jsonb_agg(jsonb_build_object(
                        'routing_key', 'auth.test.{tag}.' || g,
                        'headers', jsonb_build_object('name', 'auth_test_event',
                            'tenant_uuid', 'tenant-{tag}', 'user_uuid:*', true,
                            'required_access', 'event.auth_test_event',
                            'required_acl', 'events.auth.test.{tag}.' || g, 'seq', g),
                        'data', jsonb_build_object('seq', g, 'tag', '{tag}', 'nothing', null))
                    ORDER BY g), count(*)
             FROM generate_series({}, {}) g",
            seqs.start(),
            seqs.end()
        ),
    );
}

/// The events of a batch row (the purge writes a batch's `auth_session_deleted` events as one)
/// go out one message each, with their own routing keys, headers and data, in id order among
/// the other rows, each once, even a row of more events than the publisher sends at once (500);
/// the row goes once all its events are confirmed, and the counter counts events.
#[test]
fn a_batch_row_is_published_as_its_events_in_order() {
    let broker = shared();
    let exchange = unique_exchange("batch");
    let s = bus_server(&broker.uri(), &exchange).start();
    wait_connected(&s);
    let consumer = Consumer::bind(&broker.uri(), &exchange, "topic", "auth.test.#");
    let db = s.db.clone();
    let admin = s.admin_token();
    let empty = || {
        sql(
            &db,
            "SELECT (SELECT count(*) FROM auth_event_outbox)
                    + (SELECT count(*) FROM auth_event_outbox_batch)",
        )[0][0]
            .as_deref()
            == Some("0")
    };
    wait_until(
        "the login's event is published",
        Duration::from_secs(10),
        empty,
    );
    std::thread::sleep(Duration::from_millis(300));
    let before = metric(&scrape(&s, &admin), "wazo_auth_bus_published_total", "").unwrap_or(0.0);

    // Committed one after the other: ids in this order.
    // More single rows than the publisher reads at once (500) before the first batch row.
    insert_events(&db, "batch", 1..=520);
    insert_batch(&db, "batch", 521..=1120);
    insert_events(&db, "batch", 1121..=1130);
    insert_batch(&db, "batch", 1131..=1135);
    insert_events(&db, "batch", [1136]);
    let read = consumer.read_until(Duration::from_secs(30), Duration::from_secs(5), |r| {
        r.len() >= 1136
    });
    let seqs: Vec<u32> = read.iter().map(seq_of).collect();
    assert_eq!(seqs, (1..=1136).collect::<Vec<_>>(), "in order, each once");
    for m in &read {
        assert_test_event(m, "batch", seq_of(m));
    }
    wait_until("both tables empty", Duration::from_secs(10), empty);
    wait_until("the counter counts events", Duration::from_secs(10), || {
        metric(&scrape(&s, &admin), "wazo_auth_bus_published_total", "") == Some(before + 1136.0)
    });
}
