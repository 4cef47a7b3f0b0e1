//! Realistic values for the `fake` rule, in the policy's locale.
//!
//! Each fake is drawn from one keyed digest of the input (see
//! [`crate::mask`]), so it is deterministic per input and secret. Phone
//! numbers come from ranges reserved for fiction (`555-01XX` in the North
//! American plan, `06 9999 XXXX` in the Dutch one) and health-card numbers
//! have their province's shape but a form no real card has (a failing check
//! digit, or a birth month no card uses), so no fake is anyone's number.
//!
//! On a column that must stay unique (a key, a unique constraint or index,
//! or a reference to one) the kinds that have room for it carry a keyed
//! 64-bit tag: [`Uniqueness::Unique`].

use serde::Deserialize;

use crate::policy::FakeKind;

/// The locale fakes look like.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum Locale {
    /// Canadian English: Canadian names, `613-555-01XX`, `K1A 0B1`, Ontario health cards.
    #[serde(rename = "en-CA")]
    EnCa,
    /// Canadian French: Québécois names and places, `514-555-01XX`, Québec health cards.
    #[serde(rename = "fr-CA")]
    FrCa,
    /// United States English: `212-555-01XX`, ZIP codes, states.
    #[serde(rename = "en-US")]
    EnUs,
    /// Dutch (the default, for policies written before locales).
    #[default]
    #[serde(rename = "nl-NL")]
    NlNl,
}

impl Locale {
    /// Every locale, as policies write them.
    pub const ALL: [Locale; 4] = [Locale::EnCa, Locale::FrCa, Locale::EnUs, Locale::NlNl];

    /// The locale as policies write it.
    pub fn name(self) -> &'static str {
        match self {
            Locale::EnCa => "en-CA",
            Locale::FrCa => "fr-CA",
            Locale::EnUs => "en-US",
            Locale::NlNl => "nl-NL",
        }
    }

    fn data(self) -> &'static Data {
        match self {
            Locale::EnCa => &EN_CA,
            Locale::FrCa => &FR_CA,
            Locale::EnUs => &EN_US,
            Locale::NlNl => &NL_NL,
        }
    }

    /// Whether the locale has health cards.
    pub fn has_health_cards(self) -> bool {
        matches!(self, Locale::EnCa | Locale::FrCa)
    }
}

/// Whether a fake must keep distinct inputs distinct.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uniqueness {
    /// Drawn from the kind's realistic values (which repeat).
    Any,
    /// The column must stay unique: the value carries the input's keyed
    /// 64-bit tag (a permutation of a 64-bit keyed digest of the input).
    Unique(u64),
}

impl FakeKind {
    /// Whether the kind has a unique form (room for a 64-bit tag in a
    /// value that still looks like the kind).
    pub fn can_be_unique(self) -> bool {
        !matches!(
            self,
            FakeKind::PostalCode | FakeKind::Date | FakeKind::Province | FakeKind::HealthCard
        )
    }
}

struct Data {
    first_names: &'static [&'static str],
    last_names: &'static [&'static str],
    streets: &'static [&'static str],
    /// Cities with their province or state.
    cities: &'static [(&'static str, &'static str)],
    /// Area codes (North America) or the mobile prefix.
    area_codes: &'static [&'static str],
    mail_domain: &'static str,
}

static EN_CA: Data = Data {
    first_names: &[
        "Olivia",
        "Liam",
        "Emma",
        "Noah",
        "Charlotte",
        "William",
        "Amelia",
        "Benjamin",
        "Ava",
        "Lucas",
        "Sophia",
        "Ethan",
        "Chloe",
        "Owen",
        "Maya",
        "Jack",
        "Aiden",
        "Priya",
        "Wei",
        "Harpreet",
        "Fatima",
        "Mohammed",
        "Grace",
        "Nathan",
        "Hannah",
        "Logan",
    ],
    last_names: &[
        "Smith",
        "Brown",
        "Tremblay",
        "Martin",
        "Roy",
        "Wilson",
        "MacDonald",
        "Taylor",
        "Campbell",
        "Anderson",
        "Lee",
        "Wong",
        "Singh",
        "Patel",
        "Thompson",
        "Leblanc",
        "Gagnon",
        "Johnson",
        "Stewart",
        "Chen",
        "Fraser",
        "McKenzie",
    ],
    streets: &[
        "Maple Street",
        "King Street West",
        "Queen Street East",
        "Elm Avenue",
        "Cedar Crescent",
        "Lakeshore Road",
        "Birch Drive",
        "Victoria Avenue",
        "Main Street",
        "Oak Ridge Road",
    ],
    cities: &[
        ("Ottawa", "ON"),
        ("Toronto", "ON"),
        ("Kingston", "ON"),
        ("Sudbury", "ON"),
        ("Winnipeg", "MB"),
        ("Regina", "SK"),
        ("Calgary", "AB"),
        ("Edmonton", "AB"),
        ("Victoria", "BC"),
        ("Kelowna", "BC"),
        ("Halifax", "NS"),
        ("Moncton", "NB"),
        ("Charlottetown", "PE"),
        ("St. John's", "NL"),
    ],
    area_codes: &[
        "613", "416", "647", "905", "519", "705", "204", "306", "403", "780", "604", "250", "902",
        "506", "709",
    ],
    mail_domain: "example.ca",
};

static FR_CA: Data = Data {
    first_names: &[
        "Gabrielle",
        "Félix",
        "Léa",
        "William",
        "Florence",
        "Thomas",
        "Alice",
        "Samuel",
        "Rosalie",
        "Olivier",
        "Béatrice",
        "Antoine",
        "Juliette",
        "Mathis",
        "Émile",
        "Camille",
        "Zoé",
        "Louis",
        "Charlie",
        "Jacob",
        "Maëlle",
        "Xavier",
    ],
    last_names: &[
        "Tremblay",
        "Gagnon",
        "Roy",
        "Côté",
        "Bouchard",
        "Gauthier",
        "Morin",
        "Lavoie",
        "Fortin",
        "Gagné",
        "Ouellet",
        "Pelletier",
        "Bélanger",
        "Lévesque",
        "Bergeron",
        "Leblanc",
        "Paquette",
        "Girard",
        "Simard",
        "Boucher",
    ],
    streets: &[
        "rue Principale",
        "rue Saint-Jean",
        "boulevard René-Lévesque",
        "avenue des Érables",
        "rue de l'Église",
        "chemin du Lac",
        "rue Sainte-Catherine",
        "boulevard Laurier",
        "rue des Pins",
        "avenue du Parc",
    ],
    cities: &[
        ("Montréal", "QC"),
        ("Québec", "QC"),
        ("Laval", "QC"),
        ("Gatineau", "QC"),
        ("Sherbrooke", "QC"),
        ("Trois-Rivières", "QC"),
        ("Saguenay", "QC"),
        ("Lévis", "QC"),
        ("Rimouski", "QC"),
        ("Drummondville", "QC"),
    ],
    area_codes: &["514", "438", "418", "581", "450", "579", "819", "873"],
    mail_domain: "exemple.ca",
};

static EN_US: Data = Data {
    first_names: &[
        "James",
        "Mary",
        "Robert",
        "Patricia",
        "John",
        "Jennifer",
        "Michael",
        "Linda",
        "David",
        "Elizabeth",
        "Maria",
        "Jose",
        "Aisha",
        "Kevin",
        "Emily",
        "Daniel",
        "Sarah",
        "Carlos",
        "Jessica",
        "Tyrone",
        "Mei",
        "Andrew",
    ],
    last_names: &[
        "Smith",
        "Johnson",
        "Williams",
        "Brown",
        "Jones",
        "Garcia",
        "Miller",
        "Davis",
        "Rodriguez",
        "Martinez",
        "Hernandez",
        "Lopez",
        "Gonzalez",
        "Wilson",
        "Anderson",
        "Thomas",
        "Nguyen",
        "Kim",
        "Jackson",
        "White",
    ],
    streets: &[
        "Main Street",
        "Oak Street",
        "Pine Avenue",
        "Washington Boulevard",
        "Park Avenue",
        "Elm Street",
        "Lake Drive",
        "Cedar Lane",
        "Highland Avenue",
        "Sunset Boulevard",
    ],
    cities: &[
        ("Springfield", "IL"),
        ("Portland", "OR"),
        ("Seattle", "WA"),
        ("Spokane", "WA"),
        ("Boise", "ID"),
        ("Helena", "MT"),
        ("Anchorage", "AK"),
        ("Denver", "CO"),
        ("Austin", "TX"),
        ("Columbus", "OH"),
        ("Albany", "NY"),
        ("Richmond", "VA"),
    ],
    area_codes: &[
        "212", "312", "415", "206", "503", "208", "406", "907", "303", "512", "614", "518",
    ],
    mail_domain: "example.com",
};

static NL_NL: Data = Data {
    first_names: &[
        "Ada", "Bram", "Chioma", "Daan", "Elif", "Femke", "Goran", "Hana", "Ivo", "Joost", "Kaja",
        "Lars", "Mila", "Noor", "Omar", "Pia", "Quinten", "Rosa", "Sem", "Tess", "Umut", "Vera",
        "Wout", "Xena", "Yara", "Zeno",
    ],
    last_names: &[
        "Jansen",
        "de Vries",
        "Bakker",
        "Visser",
        "Smit",
        "Meijer",
        "Mulder",
        "de Boer",
        "Bos",
        "Vos",
        "Peters",
        "Hendriks",
        "Dekker",
        "Brouwer",
        "Kok",
        "Jacobs",
        "Vermeulen",
        "van Dijk",
        "Hoekstra",
        "Koster",
    ],
    streets: &[
        "Lindenlaan",
        "Kerkstraat",
        "Molenweg",
        "Stationsplein",
        "Dorpsstraat",
        "Beukenlaan",
        "Havenkade",
        "Schoolstraat",
    ],
    cities: &[
        ("Testdorp", "NH"),
        ("Voorbeeldstad", "ZH"),
        ("Proefwijk", "UT"),
        ("Oefenburg", "GE"),
        ("Demohaven", "ZE"),
        ("Monsterveld", "NB"),
        ("Staalstad", "LI"),
        ("Nepmonde", "FR"),
    ],
    area_codes: &["6"],
    mail_domain: "example.org",
};

/// First letters of postal codes by province (Canada Post).
fn postal_letters(province: &str) -> &'static [u8] {
    match province {
        "NL" => b"A",
        "NS" => b"B",
        "PE" => b"C",
        "NB" => b"E",
        "QC" => b"GHJ",
        "ON" => b"KLMNP",
        "MB" => b"R",
        "SK" => b"S",
        "AB" => b"T",
        "BC" => b"V",
        _ => b"X",
    }
}

/// Letters Canadian postal codes use (never D, F, I, O, Q, U).
const POSTAL_LETTERS: &[u8] = b"ABCEGHJKLMNPRSTVWXYZ";

/// Digits of a tag (base 36, lower case), 13 of them for any 64-bit value.
fn base36(mut tag: u64) -> String {
    let mut digits = [b'0'; 13];
    for digit in digits.iter_mut().rev() {
        *digit = b"0123456789abcdefghijklmnopqrstuvwxyz"[(tag % 36) as usize];
        tag /= 36;
    }
    String::from_utf8_lossy(&digits).into_owned()
}

/// A fake of `kind` from `draw(window, modulo)` (a keyed number below
/// `modulo` from one of the digest's windows), as text.
pub(crate) fn fake_text(
    kind: FakeKind,
    locale: Locale,
    uniqueness: Uniqueness,
    draw: &dyn Fn(usize, u64) -> u64,
) -> Option<String> {
    let data = locale.data();
    let pick =
        |window: usize, list: &[&'static str]| list[draw(window, list.len() as u64) as usize];
    let tag = match uniqueness {
        Uniqueness::Any => None,
        Uniqueness::Unique(tag) => Some(tag),
    };
    let city = |window: usize| data.cities[draw(window, data.cities.len() as u64) as usize];
    Some(match kind {
        FakeKind::FirstName => with_tag(pick(0, data.first_names).to_owned(), tag),
        FakeKind::LastName => with_tag(pick(0, data.last_names).to_owned(), tag),
        FakeKind::FullName => with_tag(
            format!("{} {}", pick(0, data.first_names), pick(1, data.last_names)),
            tag,
        ),
        FakeKind::Email => {
            let first = ascii_lower(pick(0, data.first_names));
            let domain = data.mail_domain;
            match tag {
                Some(tag) => format!("{first}.{}@{domain}", base36(tag)),
                None if locale == Locale::NlNl => {
                    format!("{first}.{}@{domain}", draw(1, 1_000_000))
                }
                None => format!(
                    "{first}.{}{}@{domain}",
                    ascii_lower(pick(1, data.last_names)),
                    draw(3, 10_000)
                ),
            }
        }
        FakeKind::Phone => {
            let area = pick(0, data.area_codes);
            let number = match locale {
                Locale::NlNl => format!("+31 {area} 9999 {:04}", draw(0, 10_000)),
                _ => format!("{area}-555-01{:02}", draw(1, 100)),
            };
            match tag {
                Some(tag) => format!("{number} ext. {tag}"),
                None => number,
            }
        }
        FakeKind::Address => {
            let street = pick(0, data.streets);
            let number = 1 + draw(1, 1999);
            let line = match locale {
                Locale::NlNl => format!("{street} {}", 1 + draw(1, 199)),
                Locale::FrCa => format!("{number}, {street}"),
                _ => format!("{number} {street}"),
            };
            match tag {
                Some(tag) if locale == Locale::FrCa => format!("{line}, app. {}", base36(tag)),
                Some(tag) => format!("{line}, unit {}", base36(tag).to_uppercase()),
                None => line,
            }
        }
        FakeKind::City => with_tag(city(0).0.to_owned(), tag),
        FakeKind::Province => city(0).1.to_owned(),
        FakeKind::PostalCode => match locale {
            Locale::EnCa | Locale::FrCa => {
                let first = postal_letters(city(2).1);
                let letter = |window: usize, letters: &[u8]| {
                    char::from(letters[draw(window, letters.len() as u64) as usize])
                };
                format!(
                    "{}{}{} {}{}{}",
                    letter(0, first),
                    draw(1, 10),
                    letter(3, POSTAL_LETTERS),
                    draw(1, 7) + 1,
                    letter(0, POSTAL_LETTERS),
                    draw(3, 10),
                )
            }
            Locale::EnUs => format!("{:05}", 10_000 + draw(0, 89_000)),
            Locale::NlNl => format!(
                "{:04} {}{}",
                1000 + draw(0, 9000),
                char::from(b'A' + draw(1, 26) as u8),
                char::from(b'A' + draw(2, 26) as u8)
            ),
        },
        FakeKind::HealthCard => match locale {
            // Ontario: 10 digits and a version code, the last digit failing
            // the Luhn check every real number passes.
            Locale::EnCa => {
                let mut digits = [0u8; 10];
                digits[0] = 1 + draw(0, 9) as u8;
                let mut body = draw(1, 100_000_000);
                for digit in digits[1..9].iter_mut().rev() {
                    *digit = (body % 10) as u8;
                    body /= 10;
                }
                let valid = luhn_check_digit(&digits[..9]);
                digits[9] = (valid + 1 + draw(2, 9) as u8) % 10;
                let text: String = digits
                    .iter()
                    .map(|digit| char::from(b'0' + digit))
                    .collect();
                format!(
                    "{}-{}-{}-{}{}",
                    &text[..4],
                    &text[4..7],
                    &text[7..],
                    char::from(b'A' + draw(1, 26) as u8),
                    char::from(b'A' + draw(2, 26) as u8)
                )
            }
            // Québec: four letters and eight digits whose month (13 to 49)
            // no card uses (real ones are 01–12, or 51–62).
            Locale::FrCa => {
                let letters: String = (0..4)
                    .map(|window| char::from(b'A' + draw(window, 26) as u8))
                    .collect();
                format!(
                    "{letters} {:02}{:02} {:02}{:02}",
                    draw(0, 100),
                    13 + draw(1, 37),
                    1 + draw(2, 28),
                    draw(3, 100)
                )
            }
            _ => return None,
        },
        FakeKind::Date => return None,
    })
}

fn with_tag(text: String, tag: Option<u64>) -> String {
    match tag {
        Some(tag) => format!("{text} {}", base36(tag).to_uppercase()),
        None => text,
    }
}

/// Lower case without accents or spaces, for the local part of an address.
fn ascii_lower(text: &str) -> String {
    text.chars()
        .filter_map(|character| {
            let plain = match character {
                'à' | 'â' | 'ä' | 'À' => 'a',
                'é' | 'è' | 'ê' | 'ë' | 'É' | 'È' => 'e',
                'î' | 'ï' => 'i',
                'ô' | 'ö' => 'o',
                'ù' | 'û' | 'ü' => 'u',
                'ç' => 'c',
                other if other.is_ascii_alphanumeric() => other.to_ascii_lowercase(),
                _ => return None,
            };
            Some(plain)
        })
        .collect()
}

/// The digit that makes `digits` followed by it pass the Luhn check.
fn luhn_check_digit(digits: &[u8]) -> u8 {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(position, digit)| {
            let digit = u32::from(*digit);
            if position % 2 == 0 {
                let doubled = digit * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                digit
            }
        })
        .sum();
    ((10 - sum % 10) % 10) as u8
}

/// Whether `digits` pass the Luhn check.
#[cfg(test)]
fn luhn_valid(digits: &[u8]) -> bool {
    let (body, last) = digits.split_at(digits.len() - 1);
    luhn_check_digit(body) == last[0]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draws(seed: u64) -> impl Fn(usize, u64) -> u64 {
        move |window: usize, modulo: u64| {
            let mixed = seed
                .wrapping_mul(0x9e37_79b9_7f4a_7c15)
                .rotate_left(window as u32 * 13 + 7)
                ^ (window as u64).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            mixed % modulo.max(1)
        }
    }

    #[test]
    fn canadian_fakes_have_canadian_shapes() {
        for seed in 0..2_000 {
            let draw = draws(seed);
            let fake =
                |kind, locale| fake_text(kind, locale, Uniqueness::Any, &draw).expect("a fake");
            let postal = fake(FakeKind::PostalCode, Locale::EnCa);
            let bytes = postal.as_bytes();
            assert_eq!(bytes.len(), 7, "{postal}");
            assert!(
                POSTAL_LETTERS.contains(&bytes[0]) && bytes[1].is_ascii_digit(),
                "{postal}"
            );
            assert!(
                POSTAL_LETTERS.contains(&bytes[2]) && bytes[3] == b' ',
                "{postal}"
            );
            assert!(
                bytes[4].is_ascii_digit() && POSTAL_LETTERS.contains(&bytes[5]),
                "{postal}"
            );
            assert!(bytes[6].is_ascii_digit(), "{postal}");
            let phone = fake(FakeKind::Phone, Locale::FrCa);
            assert!(phone.contains("-555-01") && phone.len() == 12, "{phone}");
            let zip = fake(FakeKind::PostalCode, Locale::EnUs);
            assert!(
                zip.len() == 5 && zip.bytes().all(|byte| byte.is_ascii_digit()),
                "{zip}"
            );
            // An Ontario health card: 4-3-3 digits and two letters, never Luhn-valid.
            let card = fake(FakeKind::HealthCard, Locale::EnCa);
            let digits: Vec<u8> = card
                .bytes()
                .filter(u8::is_ascii_digit)
                .map(|d| d - b'0')
                .collect();
            assert_eq!(digits.len(), 10, "{card}");
            assert!(!luhn_valid(&digits), "{card} passes the check digit");
            assert!(card.ends_with(|c: char| c.is_ascii_uppercase()), "{card}");
            // A Québec card: a month no real card has.
            let card = fake(FakeKind::HealthCard, Locale::FrCa);
            let month: u32 = card[7..9].parse().expect("month");
            assert!((13..=49).contains(&month), "{card}");
            let email = fake(FakeKind::Email, Locale::FrCa);
            assert!(
                email.is_ascii() && email.ends_with("@exemple.ca"),
                "{email}"
            );
        }
        assert!(
            fake_text(
                FakeKind::HealthCard,
                Locale::EnUs,
                Uniqueness::Any,
                &draws(1)
            )
            .is_none()
        );
    }

    #[test]
    fn the_luhn_digit_is_that_of_real_numbers() {
        // A published Luhn example: 7992739871 has check digit 3.
        assert_eq!(luhn_check_digit(&[7, 9, 9, 2, 7, 3, 9, 8, 7, 1]), 3);
        assert!(luhn_valid(&[7, 9, 9, 2, 7, 3, 9, 8, 7, 1, 3]));
    }
}
