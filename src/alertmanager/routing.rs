//! Routing: label matchers -> receivers. Routes are tried in order; the first match takes the
//! alert unless it says `continue`; an alert no route takes goes to the default receiver (when
//! one is configured). Each route also carries its grouping and, optionally, its own Occurrences.
//!
//! It must never route to a receiver the config does not define (the config loader refuses
//! that), and never drop an alert silently: unrouted alerts are reported to the caller.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::config::alert::{AlertManagerConfig, Matcher};

use super::occurrences::OccurrenceRule;

/// One compiled route. The default route (if any) is the last, with no matchers.
#[derive(Debug, Clone)]
pub struct Route {
    /// Position in the config's `routes`, or `routes.len()` for the default route.
    pub index: usize,
    pub receiver: String,
    pub matchers: Vec<Matcher>,
    pub continue_matching: bool,
    pub group_by: Vec<String>,
    pub group_wait: Duration,
    pub occurrences: Option<OccurrenceRule>,
}

/// All routes of a config.
#[derive(Debug, Clone)]
pub struct Router {
    routes: Vec<Route>,
    default_route: Option<Route>,
    global_occurrences: OccurrenceRule,
}

impl Router {
    /// Compiles the routes of a validated config (a matcher that fails to compile here was
    /// refused by validation, so it is skipped rather than matched wrongly).
    pub fn new(config: &AlertManagerConfig) -> Self {
        let routes = config
            .routes
            .iter()
            .enumerate()
            .map(|(index, route)| Route {
                index,
                receiver: route.receiver.clone(),
                matchers: route
                    .matchers
                    .iter()
                    .filter_map(|m| Matcher::parse(m).ok())
                    .collect(),
                continue_matching: route.continue_matching,
                group_by: route.group_by.clone(),
                group_wait: route.group_wait.unwrap_or(config.group_wait).get(),
                occurrences: route.occurrences.as_ref().map(OccurrenceRule::from),
            })
            .collect();
        let default_route = config.default_receiver.as_ref().map(|receiver| Route {
            index: config.routes.len(),
            receiver: receiver.clone(),
            matchers: Vec::new(),
            continue_matching: false,
            group_by: vec!["alertname".to_owned(), "index".to_owned()],
            group_wait: config.group_wait.get(),
            occurrences: None,
        });
        Self {
            routes,
            default_route,
            global_occurrences: OccurrenceRule::from(&config.occurrences),
        }
    }

    /// The routes that take an alert with these labels, in order (empty: unrouted).
    pub fn routes_for(&self, labels: &BTreeMap<String, String>) -> Vec<&Route> {
        let mut taken = Vec::new();
        for route in &self.routes {
            if route
                .matchers
                .iter()
                .all(|m| m.matches(labels.get(&m.name).map(String::as_str)))
            {
                taken.push(route);
                if !route.continue_matching {
                    return taken;
                }
            }
        }
        if taken.is_empty()
            && let Some(default_route) = &self.default_route
        {
            taken.push(default_route);
        }
        taken
    }

    /// The Occurrences rule for an alert taken by these routes: the first that sets one, else
    /// the global one.
    pub fn occurrences_for(&self, routes: &[&Route]) -> OccurrenceRule {
        routes
            .iter()
            .find_map(|r| r.occurrences)
            .unwrap_or(self.global_occurrences)
    }

    /// The route with this [`Route::index`] (the default route's is `routes.len()`).
    pub fn route_at(&self, index: usize) -> Option<&Route> {
        self.routes
            .get(index)
            .or_else(|| self.default_route.as_ref().filter(|r| r.index == index))
    }

    /// Every receiver name a route can deliver to (for `/api/v2/receivers`).
    pub fn all_routes(&self) -> impl Iterator<Item = &Route> {
        self.routes.iter().chain(self.default_route.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(yaml: &str) -> AlertManagerConfig {
        AlertManagerConfig::from_yaml_str(yaml, "test.yaml").unwrap()
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const YAML: &str = r#"
receivers:
  - { name: a, webhook: { url: "http://127.0.0.1:1/a" } }
  - { name: b, webhook: { url: "http://127.0.0.1:1/b" } }
  - { name: c, webhook: { url: "http://127.0.0.1:1/c" } }
routes:
  - { receiver: a, matchers: ['severity="critical"'], continue: true, occurrences: { count: 3, window: "1m" } }
  - { receiver: b, matchers: ['index=~"prod-.*"'] }
  - { receiver: c, matchers: ['index=~"prod-.*"'] }
default_receiver: c
"#;

    #[test]
    fn first_match_wins_continue_fans_out_default_catches_the_rest() {
        let router = Router::new(&config(YAML));
        let names = |l: &[(&str, &str)]| {
            router
                .routes_for(&labels(l))
                .iter()
                .map(|r| (r.receiver.clone(), r.index))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(&[("severity", "critical"), ("index", "prod-1")]),
            vec![("a".to_string(), 0), ("b".to_string(), 1)]
        );
        assert_eq!(names(&[("index", "prod-1")]), vec![("b".to_string(), 1)]);
        assert_eq!(names(&[("index", "dev")]), vec![("c".to_string(), 3)]);
        let critical = labels(&[("severity", "critical")]);
        let routes = router.routes_for(&critical);
        assert_eq!(router.occurrences_for(&routes).count, 3);
        let plain = labels(&[("index", "dev")]);
        assert_eq!(router.occurrences_for(&router.routes_for(&plain)).count, 1);
    }

    #[test]
    fn without_a_default_an_unmatched_alert_is_unrouted() {
        let yaml = YAML.replace("default_receiver: c\n", "");
        let router = Router::new(&config(&yaml));
        assert!(router.routes_for(&labels(&[("index", "dev")])).is_empty());
    }
}
