//! "No heap allocation per line for lines without escapes": counts allocations made while
//! parsing and walking every part of lines without escapes (tags, fields, index, trace id,
//! unescaped values), with up to 32 tags and fields.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use monitor::protocol::{Classifier, FieldValue, lines};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwards the caller's layout unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with this layout (see `alloc`).
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn parsing_lines_without_escapes_does_not_allocate() {
    let mut body = String::new();
    for i in 0..200 {
        body.push_str(&format!(
            "cpu,index=cluster1,host=host{i},region=eu,{} usage_user={i}i,usage_idle=0.{i},ok=t,msg=\"fine, thanks\" 1465839830100400{i:03}\n",
            (0..28).map(|t| format!("t{t}=v{t}")).collect::<Vec<_>>().join(",")
        ));
        body.push_str(&format!(
            "tracelog,index=c2,traceid=abc{i} msg=\"span {i}\",duration={i}i\n# a comment\n\n"
        ));
    }
    let classifier = Classifier::default();
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    let mut touched = 0usize;
    let mut count = 0usize;
    for line in lines(body.as_bytes(), &classifier) {
        let line = line.expect("valid line");
        count += 1;
        touched += line.measurement().unescaped().len();
        touched += line.index().map_or(0, |v| v.unescaped().len());
        touched += line.trace_id().map_or(0, |v| v.as_str().len());
        for (k, v) in line.tags() {
            touched += k.unescaped().len() + v.as_str().len();
        }
        for (k, v) in line.fields() {
            touched += k.unescaped().len();
            if let FieldValue::String(s) = v {
                touched += s.unescaped().len();
            }
        }
    }
    let allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;
    assert_eq!(count, 400);
    assert!(touched > 0);
    assert_eq!(
        allocations, 0,
        "{allocations} allocations for {count} lines"
    );
}
