//! The İYS vocabulary as types: channel, recipient type, status, source, brand,
//! message class. Parsing accepts exactly the registry's spellings.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A value that is not one of the registry's spellings for a field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field} {value:?}: expected {expected}")]
pub struct InvalidValue {
    /// The field being parsed, as the registry names it.
    pub field: &'static str,
    /// What was given (truncated to 40 characters).
    pub value: String,
    /// The accepted spellings.
    pub expected: &'static str,
}

impl InvalidValue {
    pub(crate) fn new(field: &'static str, value: &str, expected: &'static str) -> Self {
        InvalidValue {
            field,
            value: value.chars().take(40).collect(),
            expected,
        }
    }
}

macro_rules! registry_enum {
    ($(#[$meta:meta])* $name:ident, $field:literal, { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The registry's spelling.
            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = InvalidValue;
            fn from_str(s: &str) -> Result<Self, InvalidValue> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(InvalidValue::new($field, s, concat!($($text, " "),+))),
                }
            }
        }
    };
}

registry_enum!(
    /// The channel a consent covers (`type` in the registry API).
    Channel, "type", {
        /// SMS.
        Mesaj = "MESAJ",
        /// Voice call.
        Arama = "ARAMA",
        /// E-mail.
        Eposta = "EPOSTA",
    }
);

registry_enum!(
    /// Who the recipient is (`recipientType`).
    RecipientType, "recipientType", {
        /// An individual: the record is their consent.
        Bireysel = "BIREYSEL",
        /// A merchant or tradesman: needs registration, may refuse.
        Tacir = "TACIR",
    }
);

registry_enum!(
    /// Consent state (`status`).
    Status, "status", {
        /// Consent given.
        Onay = "ONAY",
        /// Refused or withdrawn.
        Ret = "RET",
    }
);

registry_enum!(
    /// Where a consent came from (`source`). `HS_*` are set by the provider,
    /// `IYS_*` by the citizen through İYS.
    Source, "source", {
        HsFizikselOrtam = "HS_FIZIKSEL_ORTAM",
        HsIslakImza = "HS_ISLAK_IMZA",
        HsWeb = "HS_WEB",
        HsCagriMerkezi = "HS_CAGRI_MERKEZI",
        HsSosyalMedya = "HS_SOSYAL_MEDYA",
        HsEposta = "HS_EPOSTA",
        HsMesaj = "HS_MESAJ",
        HsMobil = "HS_MOBIL",
        HsEortam = "HS_EORTAM",
        HsEtkinlik = "HS_ETKINLIK",
        Hs2015 = "HS_2015",
        HsAtm = "HS_ATM",
        HsKarar = "HS_KARAR",
        Iys3338 = "IYS_3338",
        IysCm = "IYS_CM",
        IysWeb = "IYS_WEB",
        IysMobil = "IYS_MOBIL",
        IysKisaLink = "IYS_KISA_LINK",
    }
);

impl Source {
    /// True for `IYS_*` sources: the citizen acted through İYS itself. Such
    /// changes appear in the `source=IYS` change feed.
    pub fn is_citizen(self) -> bool {
        self.as_str().starts_with("IYS_")
    }
}

impl Channel {
    /// Dense index 0..3, for per-channel arrays.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// True when addresses on this channel are phone numbers.
    pub const fn is_phone(self) -> bool {
        !matches!(self, Channel::Eposta)
    }
}

impl RecipientType {
    /// Dense index 0..2, for per-type arrays.
    pub const fn index(self) -> usize {
        self as usize
    }
}

/// A brand: the service provider's İYS code and the brand code under it.
/// Consent is kept per brand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Brand {
    /// The service provider (hizmet sağlayıcı) code.
    pub iys_code: u32,
    /// The brand (marka) code.
    pub brand_code: u32,
}

impl Brand {
    /// A brand from its two codes.
    pub const fn new(iys_code: u32, brand_code: u32) -> Self {
        Brand {
            iys_code,
            brand_code,
        }
    }
}

impl fmt::Display for Brand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.iys_code, self.brand_code)
    }
}

/// What the sender declares a message to be (the `iysfilter` convention).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageClass {
    /// `0`: informational (bilgilendirme), exempt from the check.
    Informational,
    /// `11` (BIREYSEL) or `12` (TACIR): commercial, needs consent.
    Commercial(RecipientType),
}

impl MessageClass {
    /// The class when nothing was declared: commercial to an individual (the safe side).
    pub const DEFAULT: MessageClass = MessageClass::Commercial(RecipientType::Bireysel);

    /// The wire code: `0`, `11` or `12`.
    pub const fn code(self) -> u8 {
        match self {
            MessageClass::Informational => 0,
            MessageClass::Commercial(RecipientType::Bireysel) => 11,
            MessageClass::Commercial(RecipientType::Tacir) => 12,
        }
    }

    /// The class for a wire code.
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(MessageClass::Informational),
            11 => Some(MessageClass::Commercial(RecipientType::Bireysel)),
            12 => Some(MessageClass::Commercial(RecipientType::Tacir)),
            _ => None,
        }
    }

    /// Metric/label name.
    pub const fn as_str(self) -> &'static str {
        match self {
            MessageClass::Informational => "informational",
            MessageClass::Commercial(RecipientType::Bireysel) => "commercial_bireysel",
            MessageClass::Commercial(RecipientType::Tacir) => "commercial_tacir",
        }
    }
}

impl FromStr for MessageClass {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, InvalidValue> {
        s.trim()
            .parse::<u8>()
            .ok()
            .and_then(MessageClass::from_code)
            .ok_or_else(|| InvalidValue::new("message_type", s, "0 11 12"))
    }
}

impl fmt::Display for MessageClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_spellings_round_trip() {
        for c in Channel::ALL {
            assert_eq!(c.as_str().parse::<Channel>().unwrap(), *c);
        }
        for s in Source::ALL {
            assert_eq!(s.as_str().parse::<Source>().unwrap(), *s);
        }
        assert!(
            "mesaj".parse::<Channel>().is_err(),
            "case matters in the API"
        );
        let err = "SMS".parse::<Channel>().unwrap_err();
        assert!(err.to_string().contains("MESAJ"), "{err}");
    }

    #[test]
    fn citizen_sources() {
        assert!(Source::IysKisaLink.is_citizen());
        assert!(!Source::HsWeb.is_citizen());
    }

    #[test]
    fn message_class_codes() {
        assert_eq!(
            "0".parse::<MessageClass>().unwrap(),
            MessageClass::Informational
        );
        assert_eq!(
            "12".parse::<MessageClass>().unwrap(),
            MessageClass::Commercial(RecipientType::Tacir)
        );
        assert!("1".parse::<MessageClass>().is_err());
        assert_eq!(MessageClass::DEFAULT.code(), 11);
    }
}
