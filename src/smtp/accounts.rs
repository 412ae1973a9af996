//! Which account (and so which brand and default class) a piece of mail is
//! sent for: by authenticated name, else client address (longest matching
//! network), else envelope sender (whole address, then its domain and the
//! domains above it). Shared by the policy service and the hop.

use std::collections::HashMap;
use std::net::IpAddr;

use anyhow::Context;

use super::config::SmtpAccountConfig;
use crate::gate::NetworkIndex;

/// A configured account as the SMTP gate uses it.
#[derive(Debug)]
pub struct Account {
    /// `[[smtp.accounts]]`.
    pub config: SmtpAccountConfig,
    /// The resolved AUTH password, when one is configured.
    pub password: Option<String>,
}

/// How a request was matched to its account (a metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchedBy {
    /// `sasl_username` / AUTH.
    Sasl,
    /// `policy_context`.
    Context,
    /// The client's address.
    Client,
    /// The envelope sender.
    Sender,
}

impl MatchedBy {
    /// Label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            MatchedBy::Sasl => "sasl",
            MatchedBy::Context => "policy_context",
            MatchedBy::Client => "client_address",
            MatchedBy::Sender => "sender",
        }
    }
}

/// Every account, indexed for the three ways of matching.
#[derive(Debug, Default)]
pub struct Accounts {
    list: Vec<Account>,
    by_name: HashMap<String, usize>,
    /// Client networks → account.
    networks: NetworkIndex,
    /// Lower-cased address or domain → account.
    senders: HashMap<String, usize>,
}

impl Accounts {
    /// Index the configured accounts, resolving passwords from the environment.
    pub fn new(configs: &[SmtpAccountConfig]) -> anyhow::Result<Accounts> {
        let mut a = Accounts::default();
        for (i, c) in configs.iter().enumerate() {
            let password = match (&c.password, &c.password_env) {
                (Some(p), _) => Some(p.clone()),
                (None, Some(var)) => Some(std::env::var(var).with_context(|| {
                    format!("smtp.accounts[{i}].password_env: {var} is not set")
                })?),
                (None, None) => None,
            };
            a.by_name.insert(c.name.clone(), i);
            for n in &c.client_networks {
                a.networks.insert(*n, i);
            }
            for s in &c.senders {
                let key = s.trim().trim_start_matches('@').to_lowercase();
                if let Some(prev) = a.senders.insert(key.clone(), i) {
                    if prev != i {
                        anyhow::bail!(
                            "smtp.accounts[{i}].senders: {key} is already listed for smtp.accounts[{prev}]"
                        );
                    }
                }
            }
            a.list.push(Account {
                config: c.clone(),
                password,
            });
        }
        a.networks.finish();
        Ok(a)
    }

    /// The account with this name.
    pub fn by_name(&self, name: &str) -> Option<&Account> {
        self.by_name.get(name).map(|&i| &self.list[i])
    }

    /// The account whose networks hold `ip` (longest prefix wins).
    pub fn by_client(&self, ip: IpAddr) -> Option<&Account> {
        self.networks.find(ip).map(|i| &self.list[i])
    }

    /// The account for an envelope sender: the whole address, else its
    /// domain, else each parent domain (`mail.shop.example` → `shop.example`).
    pub fn by_sender(&self, sender: &str) -> Option<&Account> {
        if self.senders.is_empty() || sender.is_empty() {
            return None;
        }
        let lower = sender.trim().to_lowercase();
        if let Some(&i) = self.senders.get(&lower) {
            return Some(&self.list[i]);
        }
        let mut domain = lower.rsplit_once('@').map_or(lower.as_str(), |(_, d)| d);
        loop {
            if let Some(&i) = self.senders.get(domain) {
                return Some(&self.list[i]);
            }
            match domain.split_once('.') {
                Some((_, rest)) if rest.contains('.') => domain = rest,
                _ => return None,
            }
        }
    }

    /// Match in the documented order: authenticated name, client address, sender.
    /// An authenticated name that is not an account matches nothing further:
    /// a sender who logged in is judged as that login or not at all.
    pub fn find(
        &self,
        sasl_username: Option<&str>,
        client: Option<IpAddr>,
        sender: Option<&str>,
    ) -> Option<(&Account, MatchedBy)> {
        if let Some(name) = sasl_username.filter(|n| !n.is_empty()) {
            return self.by_name(name).map(|a| (a, MatchedBy::Sasl));
        }
        if let Some(a) = client.and_then(|ip| self.by_client(ip)) {
            return Some((a, MatchedBy::Client));
        }
        sender
            .and_then(|s| self.by_sender(s))
            .map(|a| (a, MatchedBy::Sender))
    }

    /// True when no account is configured.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accounts() -> Accounts {
        let text = r#"
[[a]]
name = "shop"
iys_code = 1
brand_code = 2
client_networks = ["10.0.0.0/8", "192.0.2.7"]
senders = ["shop.example"]
[[a]]
name = "shop-tx"
iys_code = 1
brand_code = 2
default_message_type = 0
client_networks = ["10.1.0.0/16"]
senders = ["receipts@shop.example", "tx.shop.example"]
"#;
        #[derive(serde::Deserialize)]
        struct T {
            a: Vec<SmtpAccountConfig>,
        }
        let t: T = toml::from_str(text).unwrap();
        Accounts::new(&t.a).unwrap()
    }

    fn name(a: Option<(&Account, MatchedBy)>) -> Option<(&str, MatchedBy)> {
        a.map(|(a, m)| (a.config.name.as_str(), m))
    }

    #[test]
    fn match_order_and_longest_prefix() {
        let a = accounts();
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        assert_eq!(
            name(a.find(Some("shop-tx"), ip("10.0.0.1"), None)),
            Some(("shop-tx", MatchedBy::Sasl))
        );
        assert_eq!(name(a.find(Some("nobody"), ip("10.0.0.1"), None)), None);
        assert_eq!(
            name(a.find(None, ip("10.1.2.3"), None)),
            Some(("shop-tx", MatchedBy::Client))
        );
        assert_eq!(
            name(a.find(None, ip("10.2.2.3"), None)),
            Some(("shop", MatchedBy::Client))
        );
        assert_eq!(
            name(a.find(None, ip("::ffff:192.0.2.7"), None)),
            Some(("shop", MatchedBy::Client))
        );
        assert_eq!(name(a.find(None, ip("192.0.2.8"), None)), None);
        assert_eq!(
            name(a.find(None, None, Some("Receipts@Shop.Example"))),
            Some(("shop-tx", MatchedBy::Sender))
        );
        assert_eq!(
            name(a.find(None, None, Some("news@shop.example"))),
            Some(("shop", MatchedBy::Sender))
        );
        assert_eq!(
            name(a.find(None, None, Some("x@a.tx.shop.example"))),
            Some(("shop-tx", MatchedBy::Sender))
        );
        assert_eq!(
            name(a.find(None, None, Some("x@mail.shop.example"))),
            Some(("shop", MatchedBy::Sender))
        );
        assert_eq!(name(a.find(None, None, Some("x@example"))), None);
        assert_eq!(name(a.find(None, None, Some(""))), None);
    }
}
