//! Bad input: every kind of broken line gives a clear error naming line and byte column, and
//! the lines around it still parse.

use monitor::protocol::{
    Classifier, ParseErrorKind, Precision, lines, parse_line, parse_line_with_precision,
    write_timestamp,
};

fn run(body: &[u8]) -> Vec<Result<String, (usize, usize, ParseErrorKind)>> {
    let classifier = Classifier::default();
    lines(body, &classifier)
        .map(|r| match r {
            Ok(l) => Ok(String::from_utf8_lossy(l.raw()).into_owned()),
            Err(e) => Err((e.line, e.column, e.kind)),
        })
        .collect()
}

#[test]
fn invalid_utf8_is_refused_and_neighbours_parse() {
    let body = b"a f=1\nm\xff f=1\nm,t=\xc3\x28 f=1\nm s=\"ok \xe2\x82\" 1\nb f=2\n";
    let out = run(body);
    assert_eq!(out.len(), 5);
    assert_eq!(out[0], Ok("a f=1".into()));
    assert_eq!(out[1], Err((2, 2, ParseErrorKind::InvalidUtf8)));
    assert_eq!(out[2], Err((3, 5, ParseErrorKind::InvalidUtf8)));
    assert_eq!(out[3], Err((4, 9, ParseErrorKind::InvalidUtf8)));
    assert_eq!(out[4], Ok("b f=2".into()));
}

#[test]
fn nul_bytes_are_refused_outside_strings() {
    let out = run(b"m\0 f=1\nm,t=\0 f=1\nm s=\"a\0b\"\n");
    assert!(matches!(
        out[0],
        Err((1, 2, ParseErrorKind::InvalidCharacter(..)))
    ));
    assert!(matches!(
        out[1],
        Err((2, 5, ParseErrorKind::InvalidCharacter(..)))
    ));
    assert_eq!(out[2], Ok("m s=\"a\0b\"".into()));
}

#[test]
fn unterminated_string_does_not_eat_the_next_lines() {
    let out = run(b"m s=\"abc\nm f=1\nm g=2\n");
    assert_eq!(out[0], Err((1, 5, ParseErrorKind::UnterminatedString)));
    assert_eq!(out[1], Ok("m f=1".into()));
    assert_eq!(out[2], Ok("m g=2".into()));
}

#[test]
fn overflowing_integers_and_timestamps() {
    let out = run(
        b"m f=9223372036854775808i\nm f=1 9223372036854775807\nm f=1 99999999999999999999\nm f=-9223372036854775808i 9223372036854775806\n",
    );
    assert_eq!(out[0], Err((1, 5, ParseErrorKind::IntegerOutOfRange)));
    assert!(matches!(
        out[1],
        Err((2, 7, ParseErrorKind::TimestampOutOfRange { .. }))
    ));
    assert!(matches!(
        out[2],
        Err((3, 7, ParseErrorKind::TimestampOutOfRange { .. }))
    ));
    assert!(out[3].is_ok());
}

#[test]
fn timestamps_are_range_checked_after_scaling() {
    let c = Classifier::default();
    let ok = parse_line_with_precision(b"m f=1 9223372036854", 1, &c, Precision::Millisecond);
    assert_eq!(
        ok.unwrap().unwrap().timestamp_nanos(),
        Some(9_223_372_036_854_000_000)
    );
    let err = parse_line_with_precision(b"m f=1 9223372036855", 1, &c, Precision::Millisecond)
        .unwrap_err();
    assert!(matches!(
        err.kind,
        ParseErrorKind::TimestampOutOfRange { .. }
    ));
    assert_eq!(err.column, 7);
}

#[test]
fn trailing_garbage_is_refused() {
    let out = run(b"m f=1 123 456\nm f=1 123 x\nm f=1x\nm f=1 123\n");
    assert_eq!(out[0], Err((1, 11, ParseErrorKind::TrailingGarbage)));
    assert_eq!(out[1], Err((2, 11, ParseErrorKind::TrailingGarbage)));
    assert_eq!(out[2], Err((3, 5, ParseErrorKind::InvalidNumber)));
    assert_eq!(out[3], Ok("m f=1 123".into()));
}

#[test]
fn ten_megabyte_line_is_refused_and_neighbours_parse() {
    let mut body = b"a f=1\nm ".to_vec();
    while body.len() < 10 * 1024 * 1024 {
        body.extend_from_slice(b"field=1.5,");
    }
    body.extend_from_slice(b"last=1\nb f=2\n");
    let out = run(&body);
    assert_eq!(out.len(), 3);
    assert_eq!(out[0], Ok("a f=1".into()));
    assert_eq!(
        out[1],
        Err((2, 1024 * 1024 + 1, ParseErrorKind::LineTooLong(1024 * 1024)))
    );
    assert_eq!(out[2], Ok("b f=2".into()));
}

#[test]
fn ten_megabyte_string_is_refused() {
    let mut body = b"log msg=\"".to_vec();
    body.resize(10 * 1024 * 1024, b'x');
    body.extend_from_slice(b"\"\nlog msg=\"short\"\n");
    let out = run(&body);
    assert_eq!(out.len(), 2);
    assert!(matches!(
        out[0],
        Err((1, _, ParseErrorKind::LineTooLong(_)))
    ));
    assert_eq!(out[1], Ok("log msg=\"short\"".into()));
}

#[test]
fn long_string_over_the_field_limit_is_refused() {
    let mut body = b"log msg=\"".to_vec();
    body.resize(200_000, b'x');
    body.extend_from_slice(b"\"\n");
    let out = run(&body);
    assert_eq!(out[0], Err((1, 9, ParseErrorKind::StringTooLong(65536))));
}

#[test]
fn iterator_keeps_going_after_every_error() {
    let body = b"ok1 f=1\nbad\n\n# comment\nok2 f=2\r\nbad2 f=\nbad3 f=1 x\n  ok3 f=3\n";
    let out = run(body);
    let summary: Vec<String> = out
        .iter()
        .map(|r| match r {
            Ok(l) => l.clone(),
            Err((line, col, _)) => format!("err {line}:{col}"),
        })
        .collect();
    assert_eq!(
        summary,
        [
            "ok1 f=1", "err 2:4", "ok2 f=2", "err 6:8", "err 7:10", "ok3 f=3"
        ]
    );
}

#[test]
fn error_messages_are_influxdb_shaped() {
    let c = Classifier::default();
    let err = parse_line(b"cpu", 7, &c).unwrap_err();
    assert_eq!(
        err.to_string(),
        "unable to parse 'cpu': missing fields (line 7, column 4)"
    );
    assert_eq!(
        err.influx_message(),
        "unable to parse 'cpu': missing fields"
    );
    let long = vec![b'x'; 5000];
    let err = parse_line(&long, 1, &c).unwrap_err();
    assert!(err.snippet.len() <= 260 && err.snippet.ends_with("..."));
}

#[test]
fn parse_line_handles_blank_comment_and_extra_lines() {
    let c = Classifier::default();
    assert!(parse_line(b"", 1, &c).unwrap().is_none());
    assert!(parse_line(b"   # hello\n", 1, &c).unwrap().is_none());
    assert!(parse_line(b"m f=1\n", 1, &c).unwrap().is_some());
    let err = parse_line(b"m f=1\nm f=2", 1, &c).unwrap_err();
    assert_eq!(err.kind, ParseErrorKind::MultipleLines);
}

#[test]
fn multi_line_string_keeps_line_numbers_right() {
    let c = Classifier::default();
    let body = b"log msg=\"one\ntwo\nthree\" 1\nm f=1\nbad\n";
    let got: Vec<_> = lines(body, &c).collect();
    let first = got[0].as_ref().unwrap();
    assert_eq!(first.number(), 1);
    assert_eq!(first.raw(), b"log msg=\"one\ntwo\nthree\" 1");
    assert_eq!(got[1].as_ref().unwrap().number(), 4);
    assert_eq!(got[2].as_ref().unwrap_err().line, 5);
}

#[test]
fn stamping_a_line_without_timestamp() {
    let c = Classifier::default();
    let line = parse_line(b"mem,index=c1 used=1   ", 1, &c)
        .unwrap()
        .unwrap();
    assert_eq!(line.timestamp(), None);
    let mut out = Vec::new();
    write_timestamp(line.without_timestamp(), Precision::Second.now(), &mut out);
    let restamped = parse_line(&out, 1, &c).unwrap().unwrap();
    assert!(restamped.timestamp().unwrap() > 1_700_000_000);
    let with_ts = parse_line(b"m f=1 42", 1, &c).unwrap().unwrap();
    assert_eq!(with_ts.without_timestamp(), b"m f=1");
}

#[test]
fn missing_closing_quote_is_reported_where_the_string_opens() {
    // The string opened on line 1 only closes at the quote on line 3, which then fails; the
    // error names line 1 and the lines after it still parse.
    let out = run(b"log msg=\"oops 1\nm f=1\nlog msg=\"next\" 2\n");
    assert_eq!(out[0], Err((1, 9, ParseErrorKind::UnterminatedString)));
    assert_eq!(out[1], Ok("m f=1".into()));
    assert_eq!(out[2], Ok("log msg=\"next\" 2".into()));
    assert_eq!(out.len(), 3);
}
