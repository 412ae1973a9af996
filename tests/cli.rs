//! The binary as an operator runs it: generator, snapshot tools, config check.

use std::path::Path;
use std::process::{Command, Output};

fn gate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_iys-gate"))
        .args(args)
        .output()
        .expect("run iys-gate")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn gen_is_deterministic_and_loads_into_a_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        dir.path().join("a.csv"),
        dir.path().join("b.csv"),
        dir.path().join("c.csv"),
    );
    for (file, seed) in [(&a, "7"), (&b, "7"), (&c, "8")] {
        let o = gate(&[
            "gen",
            "--tuples",
            "20000",
            "--brands",
            "20",
            "--seed",
            seed,
            "--out",
            p(file),
        ]);
        assert!(o.status.success(), "{}", text(&o));
    }
    let (a_bytes, b_bytes, c_bytes) = (
        std::fs::read(&a).unwrap(),
        std::fs::read(&b).unwrap(),
        std::fs::read(&c).unwrap(),
    );
    assert_eq!(a_bytes, b_bytes, "same seed, same file");
    assert_ne!(a_bytes, c_bytes, "another seed, another file");
    assert_eq!(
        a_bytes.iter().filter(|b| **b == b'\n').count(),
        20_001,
        "header + one row per tuple"
    );

    let snap = dir.path().join("s.snap");
    let o = gate(&["snapshot", "build", "--csv", p(&a), "--out", p(&snap)]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("20000 tuples"), "{}", text(&o));
    let o = gate(&["snapshot", "inspect", p(&snap)]);
    assert!(o.status.success(), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains("tuples total:      20000"), "{out}");
    assert!(out.contains("brands:            20"), "{out}");

    // The in-process generator path builds the same store as the CSV path.
    let snap2 = dir.path().join("s2.snap");
    let o = gate(&[
        "snapshot",
        "build",
        "--gen-tuples",
        "20000",
        "--gen-brands",
        "20",
        "--gen-seed",
        "7",
        "--out",
        p(&snap2),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let o2 = gate(&["snapshot", "inspect", p(&snap2)]);
    let tuples = |s: &str| {
        s.lines()
            .filter(|l| l.starts_with("tuples"))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(tuples(&text(&o2)), tuples(&out));
}

#[test]
fn corrupt_and_truncated_snapshots_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("s.snap");
    let o = gate(&[
        "snapshot",
        "build",
        "--gen-tuples",
        "5000",
        "--gen-brands",
        "5",
        "--out",
        p(&snap),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let bytes = std::fs::read(&snap).unwrap();
    let cut = dir.path().join("cut.snap");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let o = gate(&["snapshot", "inspect", p(&cut)]);
    assert!(!o.status.success());
    assert!(text(&o).contains("truncated"), "{}", text(&o));
    let mut flipped = bytes.clone();
    let at = flipped.len() - 10;
    flipped[at] ^= 1;
    let bad = dir.path().join("bad.snap");
    std::fs::write(&bad, &flipped).unwrap();
    let o = gate(&["snapshot", "inspect", p(&bad)]);
    assert!(!o.status.success());
    assert!(text(&o).contains("checksum mismatch"), "{}", text(&o));
    let o = gate(&["snapshot", "inspect", p(&dir.path().join("missing.snap"))]);
    assert!(!o.status.success());
    assert!(text(&o).contains("missing.snap"), "{}", text(&o));
}

#[test]
fn bad_csv_rows_abort_or_are_skipped_with_line_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("x.csv");
    std::fs::write(
        &csv,
        "iysCode,brandCode,recipient,recipientType,type,status,consentDate,source,retailerCode,retailerAccess\n\
         700001,1,05321111111,BIREYSEL,MESAJ,ONAY,2024-01-01 10:00:00,HS_WEB,,\n\
         700001,1,05321111112,BIREYSEL,MESAJ,MAYBE,2024-01-01 10:00:00,HS_WEB,,\n\
         700001,1,05321111113,BIREYSEL,MESAJ,ONAY,2024-01-01 10:00:00,HS_WEB,,\n",
    )
    .unwrap();
    let out = dir.path().join("x.snap");
    let o = gate(&["snapshot", "build", "--csv", p(&csv), "--out", p(&out)]);
    assert!(!o.status.success());
    let t = text(&o);
    assert!(t.contains("line 3") && t.contains("MAYBE"), "{t}");
    assert!(!out.exists(), "nothing written on abort");
    let o = gate(&[
        "snapshot",
        "build",
        "--csv",
        p(&csv),
        "--skip-bad-rows",
        "--out",
        p(&out),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains("2 tuples") && t.contains("1 bad rows skipped") && t.contains("line 3"),
        "{t}"
    );
}

#[test]
fn config_errors_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, "[smpp]\nupstream = \"127.0.0.1:2775\"\nwindow = 0\n").unwrap();
    let o = gate(&["serve", "--config", p(&cfg), "--check-config"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("smpp.window"), "{}", text(&o));
    std::fs::write(&cfg, "[policy]\nmonitr = true\n").unwrap();
    let o = gate(&["serve", "--config", p(&cfg), "--check-config"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("monitr"), "{}", text(&o));
    let o = gate(&["serve", "--check-config"]);
    assert!(
        o.status.success(),
        "the embedded demo config is valid: {}",
        text(&o)
    );
    for sub in ["serve", "registry", "gen", "snapshot"] {
        let o = gate(&[sub, "--help"]);
        assert!(o.status.success(), "{sub} --help");
    }
}
