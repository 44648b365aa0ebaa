//! Rate limits for every user-driven write and every costly read: one token bucket (GCRA, from
//! `governor`) per user and kind of action, with a sustained rate and a burst. Past it a
//! request gets 429 `rate_limited` with `Retry-After` and the IETF `RateLimit-Policy` /
//! `RateLimit` headers. Typing is also thinned per user and conversation: at most one typing
//! event per `TYPING_MIN_INTERVAL_MS` is forwarded; the extra ones are accepted and dropped.
//!
//! Counted in memory, per instance: behind a load balancer with N instances a user may get up
//! to N times each budget (the defaults leave room for that; a shared counter would cost a
//! database round trip on every request). `RATE_LIMITS=off` turns every per-user limit off,
//! for load tests; the auth limit per client address (`AUTH_RATE_LIMIT_PER_MINUTE`) stays.

use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use uuid::Uuid;

use crate::error::ApiError;

/// Declares [`Action`] with each action's name (its `RATE_LIMIT_<NAME>` variable and its
/// `RateLimit-Policy` name) and default rate, written once.
macro_rules! actions {
    ($($(#[doc = $doc:literal])+ $variant:ident = $name:literal, $variable:literal, $default:literal;)+) => {
        /// A kind of request with a budget of its own.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Action {
            $($(#[doc = $doc])+ $variant,)+
        }

        impl Action {
            pub const ALL: &[Action] = &[$(Action::$variant,)+];

            /// The policy's name in `RateLimit-Policy`.
            pub const fn name(self) -> &'static str {
                match self {
                    $(Action::$variant => $name,)+
                }
            }

            /// The variable that sets its rate.
            pub const fn variable(self) -> &'static str {
                match self {
                    $(Action::$variant => $variable,)+
                }
            }

            /// Its rate unless configured: generous enough that no person typing meets it.
            pub const fn default_rate(self) -> &'static str {
                match self {
                    $(Action::$variant => $default,)+
                }
            }
        }
    };
}

actions! {
    /// Sending a message.
    Send = "send", "RATE_LIMIT_SEND", "20/s,100";
    /// Editing a message.
    Edit = "edit", "RATE_LIMIT_EDIT", "5/s,50";
    /// Deleting messages.
    Delete = "delete", "RATE_LIMIT_DELETE", "5/s,50";
    /// Marking a conversation read.
    Read = "read", "RATE_LIMIT_READ", "10/s,100";
    /// Typing notifications (besides the per-conversation interval).
    Typing = "typing", "RATE_LIMIT_TYPING", "10/s,50";
    /// Starring and unstarring.
    Star = "star", "RATE_LIMIT_STAR", "5/s,50";
    /// Sending, accepting and declining chat requests.
    ChatRequest = "chat_request", "RATE_LIMIT_CHAT_REQUEST", "10/min,20";
    /// Message, user and conversation searches.
    Search = "search", "RATE_LIMIT_SEARCH", "5/s,30";
    /// Stream tickets, stream opens and polls of the event log.
    Stream = "stream", "RATE_LIMIT_STREAM", "2/s,30";
    /// Creating, changing, leaving, pinning and archiving conversations.
    Conversation = "conversation", "RATE_LIMIT_CONVERSATION", "5/s,50";
    /// Uploading files.
    Upload = "upload", "RATE_LIMIT_UPLOAD", "2/s,30";
    /// Changing one's own profile and settings, blocking and unblocking.
    Profile = "profile", "RATE_LIMIT_PROFILE", "1/s,20";
    /// Presence subscriptions and the presence status.
    Presence = "presence", "RATE_LIMIT_PRESENCE", "5/s,50";
    /// Checking one's current password (a password or email change): each is a bcrypt run,
    /// and a stolen access token must not buy many guesses.
    PasswordCheck = "password_check", "RATE_LIMIT_PASSWORD_CHECK", "10/h,5";
    /// Creating, changing and deleting address-book contacts: a batch import (up to 500
    /// entries) counts once, like a single contact.
    Contacts = "contacts", "RATE_LIMIT_CONTACTS", "2/s,30";
    /// Push events (`POST /push/event`): each may reach 100 people's devices.
    PushEvent = "push_event", "RATE_LIMIT_PUSH_EVENT", "1/s,10";
}

/// A sustained rate and a burst: `20/s,100` is 20 a second with up to 100 at once
/// (units `s`, `min`, `h`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    /// One more request is allowed every this long.
    pub every: Duration,
    pub burst: NonZeroU32,
}

impl FromStr for Rate {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, String> {
        let expected = || format!("expected <count>/<s|min|h>,<burst> such as 20/s,100, got {raw:?}");
        let (rate, burst) = raw.trim().split_once(',').ok_or_else(expected)?;
        let (count, unit) = rate.trim().split_once('/').ok_or_else(expected)?;
        let count: u32 = count.trim().parse().map_err(|_| expected())?;
        let burst: u32 = burst.trim().parse().map_err(|_| expected())?;
        let unit = match unit.trim() {
            "s" => Duration::from_secs(1),
            "min" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            _ => return Err(expected()),
        };
        let (Some(count), Some(burst)) = (NonZeroU32::new(count), NonZeroU32::new(burst)) else {
            return Err(format!("count and burst must be greater than 0, got {raw:?}"));
        };
        Ok(Rate {
            every: unit / count.get(),
            burst,
        })
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "1 per {:?}, burst {}", self.every, self.burst)
    }
}

/// How the limits are set (from `Config`).
#[derive(Clone, Debug)]
pub struct LimitSettings {
    /// `RATE_LIMITS=off` turns the per-user limits off.
    pub enabled: bool,
    pub rates: Vec<(Action, Rate)>,
    pub typing_min_interval: Duration,
}

/// One budget: its rate and the buckets of the users who used it lately.
struct Budget {
    action: Action,
    rate: Rate,
    buckets: DefaultKeyedRateLimiter<Uuid>,
}

pub struct RateLimits {
    enabled: bool,
    budgets: Vec<Budget>,
    /// One typing event per (user, conversation) per interval.
    typing: DefaultKeyedRateLimiter<(Uuid, Uuid)>,
    clock: DefaultClock,
}

fn quota(rate: Rate) -> Quota {
    Quota::with_period(rate.every)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(rate.burst)
}

impl RateLimits {
    pub fn new(settings: &LimitSettings) -> Self {
        let interval = Rate {
            every: settings.typing_min_interval.max(Duration::from_millis(1)),
            burst: NonZeroU32::MIN,
        };
        Self {
            enabled: settings.enabled,
            budgets: settings
                .rates
                .iter()
                .map(|&(action, rate)| Budget {
                    action,
                    rate,
                    buckets: DefaultKeyedRateLimiter::dashmap(quota(rate)),
                })
                .collect(),
            typing: DefaultKeyedRateLimiter::dashmap(quota(interval)),
            clock: DefaultClock::default(),
        }
    }

    /// Counts one `action` by `user`: 429 past their budget.
    pub fn check(&self, action: Action, user: Uuid) -> Result<(), ApiError> {
        if !self.enabled {
            return Ok(());
        }
        let Some(budget) = self.budgets.iter().find(|budget| budget.action == action) else {
            return Ok(());
        };
        budget.buckets.check_key(&user).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            ApiError::rate_limited(wait_seconds(wait)).with_policy(
                action.name(),
                budget.rate.burst.get(),
                wait_seconds(budget.rate.every * budget.rate.burst.get()),
            )
        })
    }

    /// Should this typing event of `user` in `conversation` be forwarded? No when one was
    /// forwarded less than the interval ago.
    pub fn typing_is_due(&self, user: Uuid, conversation: Uuid) -> bool {
        !self.enabled || self.typing.check_key(&(user, conversation)).is_ok()
    }

    /// Forgets buckets that are full again, so memory follows the users active lately.
    pub fn forget_idle(&self) {
        for budget in &self.budgets {
            budget.buckets.retain_recent();
            budget.buckets.shrink_to_fit();
        }
        self.typing.retain_recent();
        self.typing.shrink_to_fit();
    }
}

/// Whole seconds, rounded up, at least 1 (what `Retry-After` and `t=` carry).
pub fn wait_seconds(wait: Duration) -> u64 {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    seconds.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_count_unit_and_burst() {
        let rate: Rate = "20/s,100".parse().unwrap();
        assert_eq!(rate.every, Duration::from_millis(50));
        assert_eq!(rate.burst.get(), 100);
        assert_eq!("10/min,20".parse::<Rate>().unwrap().every, Duration::from_secs(6));
        for bad in ["", "20", "20/s", "0/s,1", "1/s,0", "1/day,5", "x/s,1"] {
            assert!(bad.parse::<Rate>().is_err(), "{bad:?}");
        }
        for action in Action::ALL {
            assert!(action.default_rate().parse::<Rate>().is_ok(), "{action:?}");
        }
    }

    #[test]
    fn a_user_gets_the_burst_then_429_and_others_keep_theirs() {
        let limits = RateLimits::new(&LimitSettings {
            enabled: true,
            rates: vec![(Action::Send, "1/h,3".parse().unwrap())],
            typing_min_interval: Duration::from_secs(1),
        });
        let (flooder, other) = (Uuid::now_v7(), Uuid::now_v7());
        for _ in 0..3 {
            limits.check(Action::Send, flooder).unwrap();
        }
        let refused = limits.check(Action::Send, flooder).unwrap_err();
        assert_eq!(refused.code(), crate::error::ErrorCode::RateLimited);
        assert!(limits.check(Action::Send, other).is_ok());
        assert!(
            limits.check(Action::Search, flooder).is_ok(),
            "other budgets are untouched"
        );
    }

    #[test]
    fn typing_is_forwarded_once_per_interval_and_conversation() {
        let limits = RateLimits::new(&LimitSettings {
            enabled: true,
            rates: Vec::new(),
            typing_min_interval: Duration::from_secs(3600),
        });
        let (user, here, there) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        assert!(limits.typing_is_due(user, here));
        assert!(!limits.typing_is_due(user, here));
        assert!(limits.typing_is_due(user, there));
    }
}
