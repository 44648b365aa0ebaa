//! The limiter per client address for the endpoints that guess-and-check attacks go through
//! (register, login, refresh): `AUTH_RATE_LIMIT_PER_MINUTE` requests a minute, as a burst that
//! refills continuously (GCRA, from `governor`). In memory and per instance: with several
//! instances each allows its own budget, which is acceptable for slowing down password
//! guessing. IPv6 clients are counted per /64, the block one subscriber usually holds, so
//! that rotating addresses within it neither escapes the limit nor grows the map; idle
//! entries are forgotten every minute ([`RateLimiter::forget_idle`]).

use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

use crate::limits::wait_seconds;

pub struct RateLimiter {
    /// `None`: off.
    buckets: Option<(u32, DefaultKeyedRateLimiter<IpAddr>)>,
    clock: DefaultClock,
}

impl RateLimiter {
    /// `per_minute` requests per address per minute; 0 allows everything.
    pub fn per_minute(per_minute: u32) -> Self {
        Self {
            buckets: NonZeroU32::new(per_minute)
                .map(|burst| (per_minute, DefaultKeyedRateLimiter::dashmap(Quota::per_minute(burst)))),
            clock: DefaultClock::default(),
        }
    }

    /// Counts one request from `client`: `Ok` when allowed, `Err(seconds to wait)` when not.
    pub fn check(&self, client: IpAddr) -> Result<(), u64> {
        let Some((_, buckets)) = &self.buckets else {
            return Ok(());
        };
        buckets
            .check_key(&counted_as(client))
            .map_err(|not_until| wait_seconds(not_until.wait_time_from(self.clock.now())))
    }

    /// The budget, for `RateLimit-Policy`: requests per minute.
    pub fn per_minute_budget(&self) -> u32 {
        self.buckets.as_ref().map_or(0, |(per_minute, _)| *per_minute)
    }

    /// Forgets the addresses whose budget is whole again.
    pub fn forget_idle(&self) {
        if let Some((_, buckets)) = &self.buckets {
            buckets.retain_recent();
            buckets.shrink_to_fit();
        }
    }
}

/// The key an address is counted under: itself, or its /64 for IPv6.
fn counted_as(client: IpAddr) -> IpAddr {
    match client {
        IpAddr::V4(_) => client,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let segments = v6.segments();
                IpAddr::V6(Ipv6Addr::new(
                    segments[0],
                    segments[1],
                    segments[2],
                    segments[3],
                    0,
                    0,
                    0,
                    0,
                ))
            }
        },
    }
}

/// How often idle buckets are forgotten.
pub const FORGET_EVERY: Duration = Duration::from_secs(60);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_the_budget_then_refuses_with_a_wait() {
        let limiter = RateLimiter::per_minute(2);
        let (client, other) = ("127.0.0.1".parse().unwrap(), "127.0.0.2".parse().unwrap());
        assert!(limiter.check(client).is_ok());
        assert!(limiter.check(client).is_ok());
        let wait = limiter.check(client).unwrap_err();
        assert!((1..=30).contains(&wait), "{wait}");
        assert!(limiter.check(other).is_ok(), "budgets are per address");
    }

    #[test]
    fn ipv6_addresses_of_one_slash_64_share_a_budget() {
        let limiter = RateLimiter::per_minute(1);
        assert!(limiter.check("2001:db8:1:2::1".parse().unwrap()).is_ok());
        assert!(limiter.check("2001:db8:1:2::ffff".parse().unwrap()).is_err());
        assert!(limiter.check("2001:db8:1:3::1".parse().unwrap()).is_ok());
    }

    #[test]
    fn zero_turns_it_off() {
        let limiter = RateLimiter::per_minute(0);
        for _ in 0..1000 {
            assert!(limiter.check("127.0.0.1".parse().unwrap()).is_ok());
        }
    }
}
