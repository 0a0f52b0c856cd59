use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn throttle() -> AuthThrottle {
    AuthThrottle::new(ThrottleLimits::default())
}

#[test]
fn the_delay_doubles_per_failure_up_to_the_maximum() {
    let limits = ThrottleLimits {
        max_failures: 100,
        ..ThrottleLimits::default()
    };
    let mut t = AuthThrottle::new(limits);
    let now = Instant::now();
    let delays: Vec<u64> = (0..7)
        .map(|_| t.failure(ip("192.0.2.1"), now).delay.as_secs())
        .collect();
    assert_eq!(delays, [1, 2, 4, 8, 16, 16, 16]);
}

#[test]
fn one_address_failing_does_not_slow_another() {
    let mut t = throttle();
    let now = Instant::now();
    t.failure(ip("192.0.2.1"), now);
    t.failure(ip("192.0.2.1"), now);
    assert_eq!(t.failure(ip("192.0.2.1"), now).delay, secs(4));
    assert_eq!(t.failure(ip("192.0.2.2"), now).delay, secs(1));
    assert_eq!(t.check(ip("192.0.2.2"), now), Admission::Allowed);
}

#[test]
fn the_fifth_failure_within_the_window_locks_the_address_out() {
    let mut t = throttle();
    let start = Instant::now();
    for i in 0..4 {
        let verdict = t.failure(ip("192.0.2.1"), start + secs(60 * i));
        assert!(!verdict.locked_out, "failure {}", i + 1);
    }
    let fifth = start + secs(9 * 60);
    let verdict = t.failure(ip("192.0.2.1"), fifth);
    assert_eq!(
        verdict,
        Verdict {
            delay: secs(16),
            locked_out: true
        }
    );
    assert_eq!(
        t.check(ip("192.0.2.1"), fifth + secs(1)),
        Admission::LockedOut {
            until: fifth + secs(15 * 60)
        }
    );
    assert_eq!(t.check(ip("192.0.2.2"), fifth), Admission::Allowed);
}

#[test]
fn failures_older_than_the_window_no_longer_count() {
    let mut t = throttle();
    let start = Instant::now();
    for _ in 0..4 {
        t.failure(ip("192.0.2.1"), start);
    }
    // Ten minutes later the four are out of the window: this is a first failure again.
    let later = start + secs(10 * 60);
    let verdict = t.failure(ip("192.0.2.1"), later);
    assert_eq!(
        verdict,
        Verdict {
            delay: secs(1),
            locked_out: false
        }
    );
    assert_eq!(t.check(ip("192.0.2.1"), later), Admission::Allowed);
}

#[test]
fn a_lockout_ends_after_its_time_and_starts_over() {
    let mut t = throttle();
    let start = Instant::now();
    for _ in 0..5 {
        t.failure(ip("192.0.2.1"), start);
    }
    let end = start + secs(15 * 60);
    assert!(matches!(
        t.check(ip("192.0.2.1"), end - secs(1)),
        Admission::LockedOut { .. }
    ));
    assert_eq!(t.check(ip("192.0.2.1"), end), Admission::Allowed);
    assert_eq!(t.failure(ip("192.0.2.1"), end).delay, secs(1));
}

#[test]
fn a_failure_during_a_lockout_closes_without_extending_it() {
    let mut t = throttle();
    let start = Instant::now();
    for _ in 0..5 {
        t.failure(ip("192.0.2.1"), start);
    }
    let verdict = t.failure(ip("192.0.2.1"), start + secs(60));
    assert!(verdict.locked_out);
    assert_eq!(verdict.delay, secs(16));
    assert_eq!(
        t.check(ip("192.0.2.1"), start + secs(60)),
        Admission::LockedOut {
            until: start + secs(15 * 60)
        }
    );
}

#[test]
fn a_success_forgets_the_failures() {
    let mut t = throttle();
    let now = Instant::now();
    for _ in 0..4 {
        t.failure(ip("192.0.2.1"), now);
    }
    t.success(ip("192.0.2.1"));
    assert!(t.is_empty());
    assert_eq!(t.failure(ip("192.0.2.1"), now).delay, secs(1));
}

#[test]
fn memory_stays_bounded_forgetting_the_oldest_failure_first() {
    let mut t = AuthThrottle::new(ThrottleLimits {
        max_tracked: 3,
        ..ThrottleLimits::default()
    });
    let start = Instant::now();
    // .1 fails first, then again last: .2 is then the one whose last failure is oldest.
    t.failure(ip("192.0.2.1"), start);
    t.failure(ip("192.0.2.2"), start + secs(1));
    t.failure(ip("192.0.2.3"), start + secs(2));
    t.failure(ip("192.0.2.1"), start + secs(3));
    t.failure(ip("192.0.2.4"), start + secs(4));
    assert_eq!(t.len(), 3);
    // .1 kept its two failures; .2 starts over.
    assert_eq!(t.failure(ip("192.0.2.1"), start + secs(5)).delay, secs(4));
    assert_eq!(t.failure(ip("192.0.2.2"), start + secs(6)).delay, secs(1));
    assert_eq!(t.len(), 3);
    assert_eq!(
        t.by_age.len(),
        3,
        "the age index is as bounded as the table"
    );
}

#[test]
fn many_addresses_at_one_instant_stay_bounded() {
    let mut t = AuthThrottle::new(ThrottleLimits {
        max_tracked: 100,
        ..ThrottleLimits::default()
    });
    let now = Instant::now();
    for i in 0..=1000u32 {
        t.failure(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)), now);
    }
    assert_eq!(t.len(), 100);
    assert_eq!(t.by_age.len(), 100);
}

#[test]
fn entries_past_their_window_and_lockout_are_forgotten() {
    let mut t = throttle();
    let start = Instant::now();
    t.failure(ip("192.0.2.1"), start);
    for _ in 0..5 {
        t.failure(ip("192.0.2.2"), start);
    }
    t.failure(ip("192.0.2.3"), start + secs(15 * 60));
    assert_eq!(t.len(), 1, "only .3 is still counted");
}

#[test]
fn ipv6_addresses_count_per_64() {
    let mut t = throttle();
    let now = Instant::now();
    assert_eq!(t.failure(ip("2001:db8:1:2::1"), now).delay, secs(1));
    assert_eq!(t.failure(ip("2001:db8:1:2:ffff::9"), now).delay, secs(2));
    assert_eq!(t.failure(ip("2001:db8:1:3::1"), now).delay, secs(1));
    assert_eq!(t.len(), 2);
}

#[test]
fn an_ipv4_mapped_address_is_its_ipv4_address() {
    let mut t = throttle();
    let now = Instant::now();
    t.failure(ip("192.0.2.1"), now);
    assert_eq!(t.failure(ip("::ffff:192.0.2.1"), now).delay, secs(2));
    assert_eq!(t.len(), 1);
}
