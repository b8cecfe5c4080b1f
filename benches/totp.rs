//! TOTP verification (±1 step window plus the replay check, in the pure core) beside
//! the floor (one HMAC-SHA1 key schedule plus three SHA-1 compressions) and the
//! totp-rs 5 peer (`check` with skew 1), in the same run.
//!
//! `cargo bench --all-features --bench totp -- --measurement-time 5`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha1::digest::generic_array::GenericArray;
use twofactor::totp::{TotpCode, TotpKey, TotpParams, TotpVerification, Window, generate, verify};

const SECRET: &[u8; 20] = b"12345678901234567890";
const NOW: u64 = 1_800_000_015;
/// Never valid in the window around `NOW` (checked below), so every step is computed.
const WRONG: &str = "000000";

fn ours(code: &str) -> TotpVerification {
    let params = TotpParams::default();
    let key = TotpKey::new(params.algorithm, black_box(SECRET));
    let code = TotpCode::parse(black_box(code), params.digits).expect("code");
    let last_used = Some(params.step_at(NOW) - 5);
    verify(&key, &params, Window { back: 1, ahead: 1 }, &code, black_box(NOW), last_used)
}

fn bench(c: &mut Criterion) {
    let params = TotpParams::default();
    let right = generate(SECRET, &params, NOW).expose().to_owned();
    assert!(matches!(ours(&right), TotpVerification::Accepted { .. }));
    assert_eq!(ours(WRONG), TotpVerification::Rejected);
    let peer = totp_rs::TOTP::new(totp_rs::Algorithm::SHA1, 6, 1, 30, SECRET.to_vec()).expect("totp-rs");
    assert!(peer.check(&right, NOW) && !peer.check(WRONG, NOW));

    let mut g = c.benchmark_group("totp_verify");
    g.bench_function("twofactor_rejected", |b| b.iter(|| ours(black_box(WRONG))));
    g.bench_function("twofactor_accepted", |b| b.iter(|| ours(black_box(&right))));
    g.bench_function("floor_key_schedule_plus_3_compressions", |b| {
        let blocks = [GenericArray::default(); 3];
        b.iter(|| {
            let mac = Hmac::<Sha1>::new_from_slice(black_box(SECRET)).expect("any key length");
            let mut state = [0x6745_2301, 0xEFCD_AB89, 0x98BA_DCFE, 0x1032_5476, 0xC3D2_E1F0];
            for block in black_box(&blocks) {
                sha1::compress(&mut state, std::slice::from_ref(block));
            }
            (mac, state)
        })
    });
    g.bench_function("reference_key_schedule_plus_3_hmacs", |b| {
        b.iter(|| {
            let mac = Hmac::<Sha1>::new_from_slice(black_box(SECRET)).expect("any key length");
            let step = params.step_at(NOW);
            [step - 1, step, step + 1].map(|s| {
                let mut m = mac.clone();
                m.update(&s.to_be_bytes());
                m.finalize().into_bytes()
            })
        })
    });
    // Built once: `check` itself runs the HMAC key schedule on every call, as ours does.
    let peer = totp_rs::TOTP::new_unchecked(totp_rs::Algorithm::SHA1, 6, 1, 30, SECRET.to_vec());
    g.bench_function("totp_rs_check_skew1_rejected", |b| b.iter(|| peer.check(black_box(WRONG), black_box(NOW))));
    g.bench_function("totp_rs_check_skew1_accepted", |b| b.iter(|| peer.check(black_box(&right), black_box(NOW))));
    g.bench_function("breakdown_key_schedule", |b| b.iter(|| TotpKey::new(params.algorithm, black_box(SECRET))));
    let key = TotpKey::new(params.algorithm, SECRET);
    g.bench_function("breakdown_three_hotp", |b| b.iter(|| [1u64, 2, 3].map(|s| key.hotp(black_box(s), 6))));
    g.bench_function("breakdown_code_parse", |b| b.iter(|| TotpCode::parse(black_box(WRONG), 6)));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
