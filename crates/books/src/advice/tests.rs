use super::*;

fn flat(c: f64, hour: usize) -> Scenario {
    Scenario {
        hashprice: 34.49,
        btc_price: Some(86_000.0),
        hour,
        prices: [c; 24],
    }
}

fn near(a: Option<f64>, b: f64, tol: f64) -> bool {
    a.is_some_and(|a| (a - b).abs() <= tol)
}

/// The demo's classes at the all-time-low hashprice of 21 Nov 2025
/// ($34.49/PH/day, BTC about $86,000 that week) and $0.06/kWh, by hand:
/// break-even = 24 · E · 0.06 = 1.44 · E.
#[test]
fn the_all_time_low_by_hand() {
    let s = flat(0.06, 12);
    let cases = [
        ("s21", 17.5, 25.20, false),
        ("s19xp", 21.5, 30.96, false),
        ("s19jpro", 29.5, 42.48, true),
        ("s9", 98.0, 141.12, true),
    ];
    for (class, e, b, loses) in cases {
        let a = class_advice(class, "x", Some(e), 1.0, 0, &s);
        assert!(near(a.break_even_hashprice, b, 1e-9), "{a:?}");
        assert!(near(a.margin_at_network, 34.49 - b, 1e-9), "{a:?}");
        assert_eq!(a.losing_now, loses, "{a:?}");
        assert_eq!(
            a.losing_hours,
            if loses {
                vec!["0-24".to_string()]
            } else {
                vec![]
            },
            "{a:?}"
        );
        assert!(
            near(a.saved_usd_per_ph_day, (b - 34.49_f64).max(0.0), 1e-9),
            "{a:?}"
        );
        assert!(
            near(a.break_even_power_price, 34.49 / (24.0 * e), 1e-12),
            "{a:?}"
        );
    }
    // The S21 pays its power down to BTC = 86,000 · 25.20 / 34.49.
    let s21 = class_advice("s21", "x", Some(17.5), 1.0, 0, &s);
    assert!(
        near(s21.break_even_btc_price_at_network, 62_835.6, 0.1),
        "{s21:?}"
    );
    // Earning 97 % of the network's rate (fee, rejects) raises it.
    let s21 = class_advice("s21", "x", Some(17.5), 0.97, 3, &s);
    assert!(
        near(
            s21.break_even_btc_price,
            86_000.0 * 25.2 / (34.49 * 0.97),
            0.01
        ),
        "{s21:?}"
    );
    assert!(near(s21.margin, 34.49 * 0.97 - 25.2, 1e-9), "{s21:?}");
}

#[test]
fn time_of_use_prices_give_the_losing_hours_and_the_savings() {
    let sched = PowerSchedule {
        base_usd_per_kwh: 0.04,
        periods: vec![
            TouPeriod {
                from_hour: 17,
                to_hour: 21,
                usd_per_kwh: 0.12,
            },
            // Across midnight.
            TouPeriod {
                from_hour: 23,
                to_hour: 1,
                usd_per_kwh: 0.10,
            },
        ],
        utc_offset_min: 0,
    };
    let day = sched.day();
    assert_eq!(
        (day[16], day[17], day[20], day[21]),
        (0.04, 0.12, 0.12, 0.04)
    );
    assert_eq!((day[22], day[23], day[0], day[1]), (0.04, 0.10, 0.10, 0.04));
    let s = Scenario {
        prices: day,
        ..flat(0.0, 18)
    };
    // S19 XP, 21.5 J/TH: 20.64 at $0.04 (earns), 61.92 at $0.12 and 51.60
    // at $0.10 (loses).
    let a = class_advice("s19xp", "x", Some(21.5), 1.0, 0, &s);
    assert!(a.losing_now);
    assert_eq!(
        a.losing_hours,
        vec!["17-21".to_string(), "23-1".to_string()]
    );
    let saved = 4.0 * (61.92 - 34.49) / 24.0 + 2.0 * (51.6 - 34.49) / 24.0;
    assert!(near(a.saved_usd_per_ph_day, saved, 1e-9), "{a:?}");
    // A 200 TH/s machine at 21.5 J/TH (4,300 W) switched off at 18:00
    // comes back at 21:00.
    let w = worker_advice("rig", Some("s19xp"), 200e12, 4_300.0, 1.0, &s);
    assert!(w.switch_off_now);
    assert_eq!(w.back_on_at_hour, Some(21));
    assert_eq!(w.off_hours, a.losing_hours);
    assert!((w.saved_usd_day - saved * 0.2).abs() < 1e-9, "{w:?}");
    // At 22:00 it runs.
    let w = worker_advice(
        "rig",
        None,
        200e12,
        4_300.0,
        1.0,
        &Scenario { hour: 22, ..s },
    );
    assert!(!w.switch_off_now && w.back_on_at_hour.is_none() && w.profit_usd_day_now > 0.0);
}

#[test]
fn local_hours_follow_the_offset() {
    let sched = PowerSchedule {
        utc_offset_min: -300,
        ..PowerSchedule::default()
    };
    // 2025-11-21 03:30 UTC is 22:30 the day before at UTC−5.
    let t = 1_763_695_800_000;
    assert_eq!(PowerSchedule::default().hour(t), 3);
    assert_eq!(sched.hour(t), 22);
}

#[test]
fn hour_ranges_are_read_as_people_write_them() {
    let mut h = [false; 24];
    assert!(hour_ranges(&h).is_empty());
    h[5] = true;
    h[6] = true;
    assert_eq!(hour_ranges(&h), vec!["5-7"]);
    h[23] = true;
    h[0] = true;
    assert_eq!(hour_ranges(&h), vec!["5-7", "23-1"]);
    // In clock order.
    let mut h = [false; 24];
    h[0] = true;
    h[5] = true;
    assert_eq!(hour_ranges(&h), vec!["0-1", "5-6"]);
    h = [true; 24];
    assert_eq!(hour_ranges(&h), vec!["0-24"]);
    h[12] = false;
    assert_eq!(hour_ranges(&h), vec!["13-12"]);
}
