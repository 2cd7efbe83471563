//! Permissions as Bloomreach's API-group screen writes them: `"Consent: Get + Set"`.
//!
//! A permission string names a category, one or more rights joined by `+`, and an optional
//! scope (`[purchase, view_item]`). It parses into [`Grant`]s: one checkbox each. The names
//! accepted, their aliases and shorthands live in one table, [`NAMES`], so a label learnt from
//! the live docs is a one-line change.

use std::fmt;

/// One checkbox of the API-group screen (`bloomreach-api.md` section 10).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Grant {
    EventsGet,
    EventsSet,
    CustomerPropertiesGet,
    CustomerPropertiesSet,
    ConsentGet,
    ConsentSet,
    RecommendationsGet,
    CustomerAttributesGet,
    GdprExportCustomer,
    GdprExportCustomers,
    GdprAnonymizeCustomer,
    GdprExportAnalyses,
    CatalogsGetList,
    CatalogsCreate,
    CatalogsUpdate,
    CatalogsDelete,
    CatalogsGetItem,
    CatalogsUpsertItem,
    CatalogsDeleteItem,
    ImportsTrigger,
    ImportsList,
    ImportsRead,
    ImportsCreate,
    ImportsDelete,
    CampaignsEmail,
    CampaignsSms,
}

use Grant::*;

/// Every grant, in declaration order.
pub const ALL: [Grant; 26] = [
    EventsGet,
    EventsSet,
    CustomerPropertiesGet,
    CustomerPropertiesSet,
    ConsentGet,
    ConsentSet,
    RecommendationsGet,
    CustomerAttributesGet,
    GdprExportCustomer,
    GdprExportCustomers,
    GdprAnonymizeCustomer,
    GdprExportAnalyses,
    CatalogsGetList,
    CatalogsCreate,
    CatalogsUpdate,
    CatalogsDelete,
    CatalogsGetItem,
    CatalogsUpsertItem,
    CatalogsDeleteItem,
    ImportsTrigger,
    ImportsList,
    ImportsRead,
    ImportsCreate,
    ImportsDelete,
    CampaignsEmail,
    CampaignsSms,
];

impl Grant {
    /// The canonical label, as `check` and error messages print it.
    pub fn label(self) -> &'static str {
        match self {
            EventsGet => "Events: Get",
            EventsSet => "Events: Set",
            CustomerPropertiesGet => "Customer properties: Get",
            CustomerPropertiesSet => "Customer properties: Set",
            ConsentGet => "Consent: Get",
            ConsentSet => "Consent: Set",
            RecommendationsGet => "Recommendations: Get",
            CustomerAttributesGet => "Customer attributes: Get",
            GdprExportCustomer => "GDPR: Export customer",
            GdprExportCustomers => "GDPR: Export customers",
            GdprAnonymizeCustomer => "GDPR: Anonymize customer",
            GdprExportAnalyses => "GDPR: Export analyses",
            CatalogsGetList => "Catalogs: Get catalog list",
            CatalogsCreate => "Catalogs: Create catalog",
            CatalogsUpdate => "Catalogs: Update catalog",
            CatalogsDelete => "Catalogs: Delete catalog",
            CatalogsGetItem => "Catalogs: Get catalog item",
            CatalogsUpsertItem => "Catalogs: Create or update catalog item",
            CatalogsDeleteItem => "Catalogs: Delete catalog item",
            ImportsTrigger => "Imports: Allow trigger imports",
            ImportsList => "Imports: Allow to List Imports",
            ImportsRead => "Imports: Allow to Read Imports",
            ImportsCreate => "Imports: Allow to Create new Imports",
            ImportsDelete => "Imports: Allow to Delete existing imports",
            CampaignsEmail => "Campaigns: Transactional email API",
            CampaignsSms => "Campaigns: Transactional SMS API",
        }
    }

    /// Whether a public-access group may hold it (section 10, "public access").
    pub fn public(self) -> bool {
        matches!(
            self,
            EventsSet | CustomerPropertiesSet | ConsentSet | RecommendationsGet
        )
    }

    /// Whether a `[scope]` may narrow it to event types or property names.
    pub fn scopable(self) -> bool {
        matches!(
            self,
            EventsGet | EventsSet | CustomerPropertiesGet | CustomerPropertiesSet
        )
    }

    const fn bit(self) -> u32 {
        1 << self as u32
    }
}

/// A set of grants, all required (a custom endpoint's permission may tick several).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Mask(u32);

impl Mask {
    pub const fn one(grant: Grant) -> Mask {
        Mask(grant.bit())
    }

    pub fn of(grants: &[Grant]) -> Mask {
        Mask(grants.iter().fold(0, |m, g| m | g.bit()))
    }

    pub fn iter(self) -> impl Iterator<Item = Grant> {
        ALL.into_iter().filter(move |g| self.0 & g.bit() != 0)
    }
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// Every accepted `category: right`, normalised (lower case, single spaces), with its grants.
/// Aliases and shorthands are rows of their own.
const NAMES: &[(&str, &str, &[Grant])] = &[
    ("events", "get", &[EventsGet]),
    ("events", "set", &[EventsSet]),
    ("customer properties", "get", &[CustomerPropertiesGet]),
    ("customer properties", "set", &[CustomerPropertiesSet]),
    ("consent", "get", &[ConsentGet]),
    ("consent", "set", &[ConsentSet]),
    ("recommendations", "get", &[RecommendationsGet]),
    ("customer attributes", "get", &[CustomerAttributesGet]),
    ("attributes", "get", &[CustomerAttributesGet]),
    ("gdpr", "export customer", &[GdprExportCustomer]),
    ("gdpr", "export customers", &[GdprExportCustomers]),
    ("customers", "export", &[GdprExportCustomers]),
    ("gdpr", "anonymize customer", &[GdprAnonymizeCustomer]),
    ("gdpr", "export analyses", &[GdprExportAnalyses]),
    ("analyses", "get", &[GdprExportAnalyses]),
    ("catalogs", "get catalog list", &[CatalogsGetList]),
    ("catalogs", "create catalog", &[CatalogsCreate]),
    ("catalogs", "update catalog", &[CatalogsUpdate]),
    ("catalogs", "delete catalog", &[CatalogsDelete]),
    ("catalogs", "get catalog item", &[CatalogsGetItem]),
    (
        "catalogs",
        "create or update catalog item",
        &[CatalogsUpsertItem],
    ),
    ("catalogs", "delete catalog item", &[CatalogsDeleteItem]),
    ("catalogs", "get", &[CatalogsGetList, CatalogsGetItem]),
    (
        "catalogs",
        "set",
        &[
            CatalogsCreate,
            CatalogsUpdate,
            CatalogsDelete,
            CatalogsUpsertItem,
            CatalogsDeleteItem,
        ],
    ),
    ("imports", "allow trigger imports", &[ImportsTrigger]),
    ("imports", "trigger", &[ImportsTrigger]),
    ("imports", "allow to list imports", &[ImportsList]),
    ("imports", "allow to read imports", &[ImportsRead]),
    ("imports", "allow to create new imports", &[ImportsCreate]),
    (
        "imports",
        "allow to delete existing imports",
        &[ImportsDelete],
    ),
    ("campaigns", "transactional email api", &[CampaignsEmail]),
    ("campaigns", "transactional email", &[CampaignsEmail]),
    ("campaigns", "transactional sms api", &[CampaignsSms]),
    ("campaigns", "transactional sms", &[CampaignsSms]),
];

/// A parsed permission string: the grants it ticks and the scope they are narrowed to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Permission {
    pub grants: Vec<Grant>,
    /// `None`: every event type / property. `Some`: only these names (case-sensitive).
    pub scope: Option<Vec<String>>,
}

/// Parses `"<Category>: <Right> [+ <Right>]... [<scope>]"`, case-insensitively.
pub fn parse(text: &str) -> Result<Permission, String> {
    let (category, rest) = text
        .split_once(':')
        .ok_or_else(|| format!("{text:?} is not \"<Category>: <Right>\"{}", suggest(text)))?;
    let category = normalise(category);
    let (rights, scope) = match rest.find('[') {
        None => (rest, None),
        Some(open) => {
            let inner = rest[open + 1..]
                .strip_suffix(']')
                .or_else(|| rest[open + 1..].trim_end().strip_suffix(']'))
                .ok_or_else(|| format!("{text:?}: a scope is written \"[a, b]\" at the end"))?;
            let names: Vec<String> = inner.split(',').map(|s| s.trim().to_owned()).collect();
            if names.iter().any(|n| n.is_empty() || n.contains(['[', ']'])) {
                return Err(format!(
                    "{text:?}: a scope lists non-empty names, \"[a, b]\""
                ));
            }
            (&rest[..open], Some(names))
        }
    };
    let mut grants = Vec::new();
    for right in rights.split('+') {
        let right = normalise(right);
        let found = NAMES
            .iter()
            .find(|(c, r, _)| *c == category && *r == right)
            .ok_or_else(|| format!("unknown permission {text:?}{}", suggest(text)))?;
        grants.extend_from_slice(found.2);
    }
    if scope.is_some()
        && let Some(g) = grants.iter().find(|g| !g.scopable())
    {
        return Err(format!(
            "{text:?}: \"{g}\" cannot be scoped; scopes apply to Events and Customer properties"
        ));
    }
    grants.sort();
    grants.dedup();
    Ok(Permission { grants, scope })
}

fn normalise(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// `" (did you mean \"…\"?)"` for the closest known name, or nothing when none is close.
fn suggest(text: &str) -> String {
    let wanted = normalise(text.split('[').next().unwrap_or(text));
    let best = NAMES
        .iter()
        .map(|(c, r, _)| format!("{c}: {r}"))
        .map(|name| (distance(&wanted, &name), name))
        .min();
    match best {
        Some((d, name)) if d <= wanted.len().max(4) / 3 => {
            let shown = NAMES
                .iter()
                .find(|(c, r, _)| format!("{c}: {r}") == name)
                .and_then(|(_, _, g)| (g.len() == 1).then(|| g[0].label().to_owned()))
                .unwrap_or(name);
            format!(" (did you mean \"{shown}\"?)")
        }
        _ => String::new(),
    }
}

/// Levenshtein distance, for "did you mean" hints.
pub fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (prev + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            prev = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

/// The grants a group holds, as a bit set for the unscoped ones (the hot path's check is
/// one AND) and a list for the scoped ones.
#[derive(Clone, Debug, Default)]
pub struct Grants {
    unscoped: u32,
    scoped: Vec<(Grant, Vec<String>)>,
}

impl Grants {
    pub fn add(&mut self, permission: &Permission) {
        for &grant in &permission.grants {
            match &permission.scope {
                None => self.unscoped |= grant.bit(),
                Some(names) => self.scoped.push((grant, names.clone())),
            }
        }
    }

    /// Whether the group holds `grant` for every event type / property.
    pub fn has(&self, grant: Grant) -> bool {
        self.unscoped & grant.bit() != 0
    }

    /// The scoped grants, in the order written.
    pub fn scoped(&self) -> &[(Grant, Vec<String>)] {
        &self.scoped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_screen_wording_case_and_space_insensitively() {
        let p = parse("  consent :  get +SET ").unwrap();
        assert_eq!(p.grants, vec![ConsentGet, ConsentSet]);
        assert_eq!(p.scope, None);
        assert_eq!(
            parse("GDPR: Export customer").unwrap().grants,
            vec![GdprExportCustomer]
        );
        assert_eq!(
            parse("Customers: Export").unwrap().grants,
            vec![GdprExportCustomers]
        );
        assert_eq!(
            parse("Catalogs: Get").unwrap().grants,
            vec![CatalogsGetList, CatalogsGetItem]
        );
    }

    #[test]
    fn parses_scopes_for_the_rights_written_with_them() {
        let p = parse("Events: Set [purchase, view_item]").unwrap();
        assert_eq!(p.grants, vec![EventsSet]);
        assert_eq!(p.scope, Some(vec!["purchase".into(), "view_item".into()]));
        assert!(parse("GDPR: Export customer [x]").is_err());
        assert!(parse("Events: Set [a,]").is_err());
        assert!(parse("Events: Set [a").is_err());
    }

    #[test]
    fn unknown_names_suggest_the_closest() {
        let err = parse("Event: Set").unwrap_err();
        assert!(err.contains("did you mean \"Events: Set\""), "{err}");
        let err = parse("Consent Get").unwrap_err();
        assert!(err.contains("Category"), "{err}");
        assert!(
            parse("Zebra: Fly")
                .unwrap_err()
                .starts_with("unknown permission")
        );
    }

    #[test]
    fn every_grant_has_a_name_that_parses_back() {
        for (c, r, grants) in NAMES {
            let parsed = parse(&format!("{c}: {r}")).unwrap();
            assert_eq!(&parsed.grants[..], *grants);
        }
    }

    #[test]
    fn scoped_grants_do_not_count_as_unscoped() {
        let mut g = Grants::default();
        g.add(&parse("Events: Set [consent]").unwrap());
        assert!(!g.has(EventsSet));
        g.add(&parse("Events: Set").unwrap());
        assert!(g.has(EventsSet));
    }
}
