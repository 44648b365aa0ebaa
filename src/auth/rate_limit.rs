//! A fixed-window request limiter per client address, for the endpoints that guess-and-check
//! attacks go through (register, login, refresh). In-memory and per instance: with several
//! instances behind a load balancer each allows its own budget, which is acceptable for
//! slowing down password guessing.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct RateLimiter {
    per_window: u32,
    window: Duration,
    counters: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl RateLimiter {
    /// `per_minute` requests per address per minute; 0 allows everything.
    pub fn per_minute(per_minute: u32) -> Self {
        Self {
            per_window: per_minute,
            window: Duration::from_secs(60),
            counters: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one request from `client`: `Ok` when allowed, `Err(seconds to wait)` when not.
    pub fn check(&self, client: IpAddr) -> Result<(), u64> {
        self.check_at(client, Instant::now())
    }

    fn check_at(&self, client: IpAddr, now: Instant) -> Result<(), u64> {
        if self.per_window == 0 {
            return Ok(());
        }
        let mut counters = self.counters.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // Forget finished windows now and then so the map stays as small as the set of
        // currently active clients.
        if counters.len() > 10_000 {
            counters.retain(|_, (started, _)| now.duration_since(*started) < self.window);
        }
        let (started, count) = counters.entry(client).or_insert((now, 0));
        if now.duration_since(*started) >= self.window {
            *started = now;
            *count = 0;
        }
        if *count >= self.per_window {
            let wait = self.window.saturating_sub(now.duration_since(*started));
            return Err(wait.as_secs().max(1));
        }
        *count += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_the_budget_then_refuses_until_the_window_ends() {
        let limiter = RateLimiter::per_minute(2);
        let (client, other) = ("127.0.0.1".parse().unwrap(), "127.0.0.2".parse().unwrap());
        let start = Instant::now();
        assert!(limiter.check_at(client, start).is_ok());
        assert!(limiter.check_at(client, start).is_ok());
        let wait = limiter.check_at(client, start + Duration::from_secs(15)).unwrap_err();
        assert_eq!(wait, 45);
        assert!(limiter.check_at(other, start).is_ok(), "budgets are per address");
        assert!(limiter.check_at(client, start + Duration::from_secs(60)).is_ok());
    }

    #[test]
    fn zero_turns_it_off() {
        let limiter = RateLimiter::per_minute(0);
        for _ in 0..1000 {
            assert!(limiter.check("127.0.0.1".parse().unwrap()).is_ok());
        }
    }
}
