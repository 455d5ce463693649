//! A recipient's time zone, for the quiet hours: the zone a household's record names for a
//! number (`phones.timezone`), else the zone of the number's country, else the programme's
//! own (`HASHAR_TIMEZONE`, also for +992 numbers and numbers of no known country).
//!
//! The country comes from the numbering plan (the `phonenumber` crate: `+7 916…` is Russia,
//! `+7 701…` Kazakhstan). No kept crate maps a country to a time zone (chrono-tz has the
//! zones, not the countries), so the map is the small table below, written by hand from
//! tzdata's `zone.tab` (2025b, Debian's `tzdata`): one zone per ISO 3166 country, the
//! first zone.tab lists for it, and for a country with several zones the capital's (Russia
//! Europe/Moscow, Kazakhstan Asia/Almaty, the USA America/New_York, Canada America/Toronto,
//! …; see `CAPITALS` in the tests). Antarctica and the US minor outlying islands have no
//! entry (their numbers fall back to the programme's zone).

use chrono_tz::Tz;

/// (ISO 3166 alpha-2, IANA zone), sorted by country for a binary search.
const REGION_ZONES: &[(&str, &str)] = &[
    ("AD", "Europe/Andorra"),
    ("AE", "Asia/Dubai"),
    ("AF", "Asia/Kabul"),
    ("AG", "America/Antigua"),
    ("AI", "America/Anguilla"),
    ("AL", "Europe/Tirane"),
    ("AM", "Asia/Yerevan"),
    ("AO", "Africa/Luanda"),
    ("AR", "America/Argentina/Buenos_Aires"),
    ("AS", "Pacific/Pago_Pago"),
    ("AT", "Europe/Vienna"),
    ("AU", "Australia/Sydney"),
    ("AW", "America/Aruba"),
    ("AX", "Europe/Mariehamn"),
    ("AZ", "Asia/Baku"),
    ("BA", "Europe/Sarajevo"),
    ("BB", "America/Barbados"),
    ("BD", "Asia/Dhaka"),
    ("BE", "Europe/Brussels"),
    ("BF", "Africa/Ouagadougou"),
    ("BG", "Europe/Sofia"),
    ("BH", "Asia/Bahrain"),
    ("BI", "Africa/Bujumbura"),
    ("BJ", "Africa/Porto-Novo"),
    ("BL", "America/St_Barthelemy"),
    ("BM", "Atlantic/Bermuda"),
    ("BN", "Asia/Brunei"),
    ("BO", "America/La_Paz"),
    ("BQ", "America/Kralendijk"),
    ("BR", "America/Sao_Paulo"),
    ("BS", "America/Nassau"),
    ("BT", "Asia/Thimphu"),
    ("BW", "Africa/Gaborone"),
    ("BY", "Europe/Minsk"),
    ("BZ", "America/Belize"),
    ("CA", "America/Toronto"),
    ("CC", "Indian/Cocos"),
    ("CD", "Africa/Kinshasa"),
    ("CF", "Africa/Bangui"),
    ("CG", "Africa/Brazzaville"),
    ("CH", "Europe/Zurich"),
    ("CI", "Africa/Abidjan"),
    ("CK", "Pacific/Rarotonga"),
    ("CL", "America/Santiago"),
    ("CM", "Africa/Douala"),
    ("CN", "Asia/Shanghai"),
    ("CO", "America/Bogota"),
    ("CR", "America/Costa_Rica"),
    ("CU", "America/Havana"),
    ("CV", "Atlantic/Cape_Verde"),
    ("CW", "America/Curacao"),
    ("CX", "Indian/Christmas"),
    ("CY", "Asia/Nicosia"),
    ("CZ", "Europe/Prague"),
    ("DE", "Europe/Berlin"),
    ("DJ", "Africa/Djibouti"),
    ("DK", "Europe/Copenhagen"),
    ("DM", "America/Dominica"),
    ("DO", "America/Santo_Domingo"),
    ("DZ", "Africa/Algiers"),
    ("EC", "America/Guayaquil"),
    ("EE", "Europe/Tallinn"),
    ("EG", "Africa/Cairo"),
    ("EH", "Africa/El_Aaiun"),
    ("ER", "Africa/Asmara"),
    ("ES", "Europe/Madrid"),
    ("ET", "Africa/Addis_Ababa"),
    ("FI", "Europe/Helsinki"),
    ("FJ", "Pacific/Fiji"),
    ("FK", "Atlantic/Stanley"),
    ("FM", "Pacific/Pohnpei"),
    ("FO", "Atlantic/Faroe"),
    ("FR", "Europe/Paris"),
    ("GA", "Africa/Libreville"),
    ("GB", "Europe/London"),
    ("GD", "America/Grenada"),
    ("GE", "Asia/Tbilisi"),
    ("GF", "America/Cayenne"),
    ("GG", "Europe/Guernsey"),
    ("GH", "Africa/Accra"),
    ("GI", "Europe/Gibraltar"),
    ("GL", "America/Nuuk"),
    ("GM", "Africa/Banjul"),
    ("GN", "Africa/Conakry"),
    ("GP", "America/Guadeloupe"),
    ("GQ", "Africa/Malabo"),
    ("GR", "Europe/Athens"),
    ("GS", "Atlantic/South_Georgia"),
    ("GT", "America/Guatemala"),
    ("GU", "Pacific/Guam"),
    ("GW", "Africa/Bissau"),
    ("GY", "America/Guyana"),
    ("HK", "Asia/Hong_Kong"),
    ("HN", "America/Tegucigalpa"),
    ("HR", "Europe/Zagreb"),
    ("HT", "America/Port-au-Prince"),
    ("HU", "Europe/Budapest"),
    ("ID", "Asia/Jakarta"),
    ("IE", "Europe/Dublin"),
    ("IL", "Asia/Jerusalem"),
    ("IM", "Europe/Isle_of_Man"),
    ("IN", "Asia/Kolkata"),
    ("IO", "Indian/Chagos"),
    ("IQ", "Asia/Baghdad"),
    ("IR", "Asia/Tehran"),
    ("IS", "Atlantic/Reykjavik"),
    ("IT", "Europe/Rome"),
    ("JE", "Europe/Jersey"),
    ("JM", "America/Jamaica"),
    ("JO", "Asia/Amman"),
    ("JP", "Asia/Tokyo"),
    ("KE", "Africa/Nairobi"),
    ("KG", "Asia/Bishkek"),
    ("KH", "Asia/Phnom_Penh"),
    ("KI", "Pacific/Tarawa"),
    ("KM", "Indian/Comoro"),
    ("KN", "America/St_Kitts"),
    ("KP", "Asia/Pyongyang"),
    ("KR", "Asia/Seoul"),
    ("KW", "Asia/Kuwait"),
    ("KY", "America/Cayman"),
    ("KZ", "Asia/Almaty"),
    ("LA", "Asia/Vientiane"),
    ("LB", "Asia/Beirut"),
    ("LC", "America/St_Lucia"),
    ("LI", "Europe/Vaduz"),
    ("LK", "Asia/Colombo"),
    ("LR", "Africa/Monrovia"),
    ("LS", "Africa/Maseru"),
    ("LT", "Europe/Vilnius"),
    ("LU", "Europe/Luxembourg"),
    ("LV", "Europe/Riga"),
    ("LY", "Africa/Tripoli"),
    ("MA", "Africa/Casablanca"),
    ("MC", "Europe/Monaco"),
    ("MD", "Europe/Chisinau"),
    ("ME", "Europe/Podgorica"),
    ("MF", "America/Marigot"),
    ("MG", "Indian/Antananarivo"),
    ("MH", "Pacific/Majuro"),
    ("MK", "Europe/Skopje"),
    ("ML", "Africa/Bamako"),
    ("MM", "Asia/Yangon"),
    ("MN", "Asia/Ulaanbaatar"),
    ("MO", "Asia/Macau"),
    ("MP", "Pacific/Saipan"),
    ("MQ", "America/Martinique"),
    ("MR", "Africa/Nouakchott"),
    ("MS", "America/Montserrat"),
    ("MT", "Europe/Malta"),
    ("MU", "Indian/Mauritius"),
    ("MV", "Indian/Maldives"),
    ("MW", "Africa/Blantyre"),
    ("MX", "America/Mexico_City"),
    ("MY", "Asia/Kuala_Lumpur"),
    ("MZ", "Africa/Maputo"),
    ("NA", "Africa/Windhoek"),
    ("NC", "Pacific/Noumea"),
    ("NE", "Africa/Niamey"),
    ("NF", "Pacific/Norfolk"),
    ("NG", "Africa/Lagos"),
    ("NI", "America/Managua"),
    ("NL", "Europe/Amsterdam"),
    ("NO", "Europe/Oslo"),
    ("NP", "Asia/Kathmandu"),
    ("NR", "Pacific/Nauru"),
    ("NU", "Pacific/Niue"),
    ("NZ", "Pacific/Auckland"),
    ("OM", "Asia/Muscat"),
    ("PA", "America/Panama"),
    ("PE", "America/Lima"),
    ("PF", "Pacific/Tahiti"),
    ("PG", "Pacific/Port_Moresby"),
    ("PH", "Asia/Manila"),
    ("PK", "Asia/Karachi"),
    ("PL", "Europe/Warsaw"),
    ("PM", "America/Miquelon"),
    ("PN", "Pacific/Pitcairn"),
    ("PR", "America/Puerto_Rico"),
    ("PS", "Asia/Hebron"),
    ("PT", "Europe/Lisbon"),
    ("PW", "Pacific/Palau"),
    ("PY", "America/Asuncion"),
    ("QA", "Asia/Qatar"),
    ("RE", "Indian/Reunion"),
    ("RO", "Europe/Bucharest"),
    ("RS", "Europe/Belgrade"),
    ("RU", "Europe/Moscow"),
    ("RW", "Africa/Kigali"),
    ("SA", "Asia/Riyadh"),
    ("SB", "Pacific/Guadalcanal"),
    ("SC", "Indian/Mahe"),
    ("SD", "Africa/Khartoum"),
    ("SE", "Europe/Stockholm"),
    ("SG", "Asia/Singapore"),
    ("SH", "Atlantic/St_Helena"),
    ("SI", "Europe/Ljubljana"),
    ("SJ", "Arctic/Longyearbyen"),
    ("SK", "Europe/Bratislava"),
    ("SL", "Africa/Freetown"),
    ("SM", "Europe/San_Marino"),
    ("SN", "Africa/Dakar"),
    ("SO", "Africa/Mogadishu"),
    ("SR", "America/Paramaribo"),
    ("SS", "Africa/Juba"),
    ("ST", "Africa/Sao_Tome"),
    ("SV", "America/El_Salvador"),
    ("SX", "America/Lower_Princes"),
    ("SY", "Asia/Damascus"),
    ("SZ", "Africa/Mbabane"),
    ("TC", "America/Grand_Turk"),
    ("TD", "Africa/Ndjamena"),
    ("TF", "Indian/Kerguelen"),
    ("TG", "Africa/Lome"),
    ("TH", "Asia/Bangkok"),
    ("TJ", "Asia/Dushanbe"),
    ("TK", "Pacific/Fakaofo"),
    ("TL", "Asia/Dili"),
    ("TM", "Asia/Ashgabat"),
    ("TN", "Africa/Tunis"),
    ("TO", "Pacific/Tongatapu"),
    ("TR", "Europe/Istanbul"),
    ("TT", "America/Port_of_Spain"),
    ("TV", "Pacific/Funafuti"),
    ("TW", "Asia/Taipei"),
    ("TZ", "Africa/Dar_es_Salaam"),
    ("UA", "Europe/Kyiv"),
    ("UG", "Africa/Kampala"),
    ("US", "America/New_York"),
    ("UY", "America/Montevideo"),
    ("UZ", "Asia/Tashkent"),
    ("VA", "Europe/Vatican"),
    ("VC", "America/St_Vincent"),
    ("VE", "America/Caracas"),
    ("VG", "America/Tortola"),
    ("VI", "America/St_Thomas"),
    ("VN", "Asia/Ho_Chi_Minh"),
    ("VU", "Pacific/Efate"),
    ("WF", "Pacific/Wallis"),
    ("WS", "Pacific/Apia"),
    ("YE", "Asia/Aden"),
    ("YT", "Indian/Mayotte"),
    ("ZA", "Africa/Johannesburg"),
    ("ZM", "Africa/Lusaka"),
    ("ZW", "Africa/Harare"),
];

/// The zone of a country (ISO 3166 alpha-2, as the numbering plan names it), if known.
pub fn region_zone(region: &str) -> Option<Tz> {
    REGION_ZONES
        .binary_search_by(|(r, _)| (*r).cmp(region))
        .ok()
        .and_then(|i| REGION_ZONES[i].1.parse().ok())
}

/// The country of an E.164 number (`RU`, `KZ`, …), if the numbering plan knows it.
pub fn region_of(e164: &str) -> Option<String> {
    let number = phonenumber::parse(None, e164).ok()?;
    number.country().id().map(|id| id.as_ref().to_owned())
}

/// The zone of a number's country; `home` (the programme's zone) for a Tajik number and
/// for a number of no known country.
pub fn number_zone(e164: &str, home: Tz) -> Tz {
    if e164.starts_with("+992") {
        // the programme's own country: its configured zone, and no parsing
        return home;
    }
    region_of(e164)
        .and_then(|r| region_zone(&r))
        .unwrap_or(home)
}

/// The zone a number's messages are timed in: `chosen` (the zone recorded for the number,
/// `phones.timezone`) when it names one, else the number's country's ([`number_zone`]).
pub fn zone_of(e164: &str, chosen: Option<&str>, home: Tz) -> Tz {
    chosen
        .and_then(|c| c.parse::<Tz>().ok())
        .unwrap_or_else(|| number_zone(e164, home))
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not an IANA time zone name (such as Europe/Moscow): {0:?}")]
pub struct BadZone(pub String);

/// Longest zone name accepted (the longest IANA name has 32 characters).
pub const MAX_ZONE_NAME: usize = 64;

/// Reads a zone name typed by a person or sent to the API (`Europe/Moscow`; surrounding
/// spaces ignored): one of the IANA database's names, as chrono-tz knows them.
pub fn parse_zone(name: &str) -> Result<Tz, BadZone> {
    let name = name.trim();
    if name.is_empty() || name.len() > MAX_ZONE_NAME {
        return Err(BadZone(name.chars().take(MAX_ZONE_NAME).collect()));
    }
    name.parse::<Tz>().map_err(|_| BadZone(name.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::{America, Asia, Europe};

    const HOME: Tz = Asia::Dushanbe;

    #[test]
    fn the_table_is_sorted_and_every_zone_is_known() {
        for w in REGION_ZONES.windows(2) {
            assert!(w[0].0 < w[1].0, "{:?} before {:?}", w[0], w[1]);
        }
        for (region, zone) in REGION_ZONES {
            assert!(zone.parse::<Tz>().is_ok(), "{region}: {zone}");
            assert_eq!(region_zone(region).map(|z| z.name()), Some(*zone));
        }
    }

    /// Countries of several zones: their capital's.
    const CAPITALS: &[(&str, Tz)] = &[
        ("RU", Europe::Moscow),
        ("KZ", Asia::Almaty),
        ("US", America::New_York),
        ("CA", America::Toronto),
        ("UZ", Asia::Tashkent),
        ("UA", Europe::Kyiv),
        ("CN", Asia::Shanghai),
        ("BR", America::Sao_Paulo),
        ("ID", Asia::Jakarta),
        ("MX", America::Mexico_City),
        ("AU", chrono_tz::Australia::Sydney),
        ("DE", Europe::Berlin),
        ("ES", Europe::Madrid),
        ("PT", Europe::Lisbon),
    ];

    #[test]
    fn several_zone_countries_use_their_capitals() {
        for (region, zone) in CAPITALS {
            assert_eq!(region_zone(region), Some(*zone), "{region}");
        }
        assert_eq!(region_zone("TR"), Some(Europe::Istanbul));
        assert_eq!(region_zone("KG"), Some(Asia::Bishkek));
        assert_eq!(region_zone("AE"), Some(Asia::Dubai));
        assert_eq!(region_zone("KR"), Some(Asia::Seoul));
        assert_eq!(region_zone("TJ"), Some(Asia::Dushanbe));
        assert_eq!(region_zone("AQ"), None);
        assert_eq!(region_zone("XX"), None);
    }

    #[test]
    fn a_number_is_timed_in_its_countrys_zone() {
        for (number, zone) in [
            ("+79161234567", Europe::Moscow), // Russia, a Moscow mobile
            ("+79141234567", Europe::Moscow), // Russia, a Far East mobile: still Moscow's
            ("+77012345678", Asia::Almaty),   // Kazakhstan shares +7
            ("+905321234567", Europe::Istanbul),
            ("+998901234567", Asia::Tashkent),
            ("+996700123456", Asia::Bishkek),
            ("+12025550143", America::New_York),
            ("+992901234567", HOME),
            ("+8821234567", HOME), // an international network: no country
        ] {
            assert_eq!(number_zone(number, HOME), zone, "{number}");
        }
        // a Tajik number follows the programme's zone wherever it is set
        assert_eq!(number_zone("+992901234567", Europe::Moscow), Europe::Moscow);
    }

    #[test]
    fn a_zone_recorded_for_the_number_comes_first() {
        assert_eq!(
            zone_of("+79161234567", Some("Asia/Yekaterinburg"), HOME),
            Asia::Yekaterinburg
        );
        assert_eq!(zone_of("+79161234567", None, HOME), Europe::Moscow);
        // a stored name chrono-tz does not know (a newer database): the country's
        assert_eq!(
            zone_of("+79161234567", Some("Mars/Olympus"), HOME),
            Europe::Moscow
        );
    }

    #[test]
    fn zone_names_are_checked() {
        assert_eq!(parse_zone(" Europe/Moscow "), Ok(Europe::Moscow));
        assert!(parse_zone("Moscow").is_err());
        assert!(parse_zone("").is_err());
        assert!(parse_zone(&"A".repeat(500)).is_err());
        assert_eq!(
            parse_zone(&"A".repeat(500)).map_err(|e| e.0.len()),
            Err(MAX_ZONE_NAME)
        );
    }
}
