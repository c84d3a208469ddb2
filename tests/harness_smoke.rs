//! Smoke test of the integration harness itself (tests/support): real influxd clusters survive a
//! kill -9 and restart with their data, SIGSTOP/SIGCONT work, and the SMTP sink stores mail sent
//! over a raw SMTP conversation. If this fails, every other integration test is suspect.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use support::{InfluxCluster, SmtpSink};

fn timestamp(i: usize) -> i64 {
    1_000_000_000 + i as i64
}

fn write_and_check(cluster: &InfluxCluster, i: usize) {
    let body = format!("smoke,node=n{i} value={i}i {}\n", timestamp(i));
    let response = cluster.write(i, "smoke", body.as_bytes());
    assert_eq!(
        response.status,
        204,
        "write to node {i}: {}",
        response.text()
    );
}

fn rows(cluster: &InfluxCluster, i: usize) -> Vec<Vec<serde_json::Value>> {
    cluster.query_rows(i, "smoke", "SELECT value, node FROM smoke")
}

#[test]
fn three_influxd_write_read_kill9_restart() {
    let cluster = InfluxCluster::start(3);
    assert_eq!(cluster.urls().len(), 3);
    let ports: std::collections::HashSet<u16> = (0..3).map(|i| cluster.http_port(i)).collect();
    assert_eq!(ports.len(), 3, "nodes must have distinct ports");

    for i in 0..3 {
        cluster.create_database(i, "smoke");
        write_and_check(&cluster, i);
    }
    for i in 0..3 {
        let rows = rows(&cluster, i);
        assert_eq!(
            rows.len(),
            1,
            "node {i} holds exactly its own point: {rows:?}"
        );
        assert_eq!(rows[0][0], serde_json::json!(timestamp(i)));
        assert_eq!(rows[0][1], serde_json::json!(i));
        assert_eq!(rows[0][2], serde_json::json!(format!("n{i}")));
    }

    let old_pid = cluster.pid(1).expect("node 1 has a pid");
    cluster.kill9(1);
    let refused = support::http_request(
        std::net::SocketAddr::from(([127, 0, 0, 1], cluster.http_port(1))),
        "GET",
        "/ping",
        &[],
        b"",
    );
    assert!(refused.is_err(), "a killed node must refuse connections");
    cluster.restart(1);
    assert_ne!(
        cluster.pid(1),
        Some(old_pid),
        "restart starts a new process"
    );
    assert_eq!(support::http_get(cluster.http_port(1), "/ping").status, 204);
    let after = rows(&cluster, 1);
    assert_eq!(
        after.len(),
        1,
        "data written before kill -9 survives (WAL replay): {after:?}"
    );
    assert_eq!(after[0][1], serde_json::json!(1));

    // the other nodes were not disturbed
    assert_eq!(rows(&cluster, 0).len(), 1);
    assert_eq!(rows(&cluster, 2).len(), 1);

    // a stopped (hung) node keeps its port but answers only after SIGCONT
    cluster.sigstop(2);
    cluster.sigcont(2);
    assert_eq!(rows(&cluster, 2).len(), 1);
}

#[test]
fn two_clusters_at_once_do_not_collide() {
    let a = InfluxCluster::start(1);
    let b = InfluxCluster::start(1);
    assert_ne!(a.http_port(0), b.http_port(0));
    assert_ne!(a.dir(), b.dir());
    a.create_database(0, "x");
    b.create_database(0, "x");
    assert_eq!(a.write(0, "x", b"m v=1 1").status, 204);
    let on_b = b.query(0, "x", "SELECT * FROM m");
    assert!(
        on_b["results"][0].get("series").is_none(),
        "b must not see a's point: {on_b}"
    );
    let dir = a.dir().to_path_buf();
    drop(a);
    assert!(!dir.exists(), "the cluster's temp dir is removed on drop");
}

fn smtp_line(reader: &mut BufReader<TcpStream>) -> String {
    // multi-line replies ("250-...") end with a line whose 4th char is a space
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("read SMTP reply");
        assert!(!line.is_empty(), "SMTP server closed the connection");
        if line.as_bytes().get(3) != Some(&b'-') {
            return line;
        }
    }
}

fn smtp_command(stream: &mut TcpStream, reader: &mut BufReader<TcpStream>, cmd: &str, code: &str) {
    stream.write_all(cmd.as_bytes()).expect("send SMTP command");
    let reply = smtp_line(reader);
    assert!(
        reply.starts_with(code),
        "{cmd:?} answered {reply:?}, expected {code}"
    );
}

#[test]
fn smtp_sink_stores_a_mail_sent_over_raw_smtp() {
    let sink = SmtpSink::start();
    assert!(sink.messages().is_empty());

    let mut stream = TcpStream::connect(sink.addr()).expect("connect to the SMTP sink");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    assert!(smtp_line(&mut reader).starts_with("220"));
    smtp_command(&mut stream, &mut reader, "EHLO test.local\r\n", "250");
    smtp_command(
        &mut stream,
        &mut reader,
        "MAIL FROM:<alerts@monitor.test>\r\n",
        "250",
    );
    smtp_command(
        &mut stream,
        &mut reader,
        "RCPT TO:<oncall@example.test>\r\n",
        "250",
    );
    smtp_command(
        &mut stream,
        &mut reader,
        "RCPT TO:<team@example.test>\r\n",
        "250",
    );
    smtp_command(&mut stream, &mut reader, "DATA\r\n", "354");
    let message = "From: alerts@monitor.test\r\nTo: oncall@example.test\r\nSubject: [FIRING] disk full\r\n\r\nhost db1: disk 99%\r\n..leading dot\r\n.\r\n";
    smtp_command(&mut stream, &mut reader, message, "250");
    smtp_command(&mut stream, &mut reader, "QUIT\r\n", "221");

    let mails = sink.wait_for_messages(1, Duration::from_secs(10));
    assert_eq!(mails.len(), 1, "exactly one mail stored");
    let mail = &mails[0];
    assert_eq!(mail.mail_from, "alerts@monitor.test");
    assert_eq!(
        mail.rcpt_to,
        vec!["oncall@example.test", "team@example.test"]
    );
    assert_eq!(
        mail.header("subject").as_deref(),
        Some("[FIRING] disk full")
    );
    assert!(
        mail.body().contains("host db1: disk 99%"),
        "body: {:?}",
        mail.body()
    );
    assert!(
        mail.body().contains("\r\n.leading dot"),
        "dot-stuffing undone: {:?}",
        mail.body()
    );
}

#[test]
fn smtp_sinks_in_parallel_get_their_own_ports_and_mail() {
    let a = SmtpSink::start();
    let b = SmtpSink::start();
    assert_ne!(a.port(), b.port());
    let status = std::process::Command::new("/usr/bin/python3")
        .args([
            "-c",
            "import smtplib,sys; s=smtplib.SMTP('127.0.0.1', int(sys.argv[1])); \
             s.sendmail('a@x.test', ['b@y.test'], 'Subject: via smtplib\\r\\n\\r\\nhello'); s.quit()",
            &a.port().to_string(),
        ])
        .status()
        .expect("run python3 smtplib");
    assert!(status.success());
    let mails = a.wait_for_messages(1, Duration::from_secs(10));
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].header("Subject").as_deref(), Some("via smtplib"));
    assert!(b.messages().is_empty(), "the other sink received nothing");
}

#[test]
fn process_guard_kills_its_child_on_drop() {
    let mut sleeper = support::ProcessGuard::spawn(std::process::Command::new("sleep").arg("300"));
    let pid = sleeper.pid();
    assert!(sleeper.exited().is_none(), "sleep 300 is still running");
    drop(sleeper);
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "the child is gone (killed and reaped) after drop"
    );
}
