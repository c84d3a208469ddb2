//! Fuzz target: the parser must never panic, and every accepted line must survive a round
//! trip through `Point::write_line_protocol`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use monitor::protocol::{Classifier, Point, lines};

fuzz_target!(|body: &[u8]| {
    let classifier = Classifier::default();
    for line in lines(body, &classifier) {
        let Ok(line) = line else { continue };
        let point = Point::from_line(&line);
        let mut out = Vec::new();
        point.write_line_protocol(&mut out);
        let again: Vec<Point> = lines(&out, &classifier)
            .map(|l| Point::from_line(&l.expect("a serialised point parses")))
            .collect();
        assert_eq!(again, vec![point]);
    }
});
