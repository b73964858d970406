//! The `nat:` section: NAT44 rules resolved against the zones, address objects and ports of
//! the rest of the policy, every error at its line and column.
use super::{parse_addr, parse_port, Compiler, Ranges};
use crate::nat::{DestinationNat, NatRule, SourceNat};
use crate::policy::model::{self, PolicyFile, Ref};
use std::collections::HashMap;

/// NAT rules a policy may have.
pub const MAX_NAT_RULES: usize = 4096;
/// Addresses a pool may hold.
pub const MAX_POOL: u64 = 65536;

/// IPv4 ranges (as u32) of IPv4-mapped ranges; None if any is IPv6.
fn v4_ranges(r: &Ranges) -> Option<Vec<(u32, u32)>> {
    const MAPPED: u128 = 0xffff << 32;
    r.iter()
        .map(|&(lo, hi)| {
            (lo >> 32 == 0xffff && hi >> 32 == 0xffff)
                .then_some(((lo - MAPPED) as u32, (hi - MAPPED) as u32))
        })
        .collect()
}

/// The prefix length of inclusive range (lo, hi), if it is one prefix.
fn prefix_len(lo: u32, hi: u32) -> Option<u8> {
    let size = (hi as u64) - (lo as u64) + 1;
    if !size.is_power_of_two() || !(lo as u64).is_multiple_of(size) {
        return None;
    }
    Some(32 - size.trailing_zeros() as u8)
}

impl Compiler<'_> {
    pub(super) fn nat_rules(
        &mut self,
        m: &PolicyFile,
        zones: &[(String, u8)],
        objects: &HashMap<String, Ranges>,
        port_names: Option<&[String]>,
    ) -> Vec<NatRule> {
        if m.nat.len() > MAX_NAT_RULES {
            if let Some(r) = m.nat.get(MAX_NAT_RULES) {
                self.error_at(
                    &r.name,
                    format!("too many NAT rules: at most {MAX_NAT_RULES}"),
                );
            }
            return Vec::new();
        }
        let mut out: Vec<NatRule> = Vec::new();
        let mut names: HashMap<&str, u64> = HashMap::new();
        for r in &m.nat {
            let name = r.name.value.as_str();
            if let Some(line) = names.get(name) {
                self.error_at(
                    &r.name,
                    format!("NAT rule {name:?} is defined twice (first on line {line})"),
                );
                continue;
            }
            names.insert(name, r.name.referenced.line());
            if let Some(rule) = self.nat_rule(r, zones, objects, port_names) {
                out.push(rule);
            }
        }
        out
    }

    fn v4_side(
        &mut self,
        refs: &[Ref],
        objects: &HashMap<String, Ranges>,
        what: &str,
        rule: &str,
    ) -> Option<Vec<(u32, u32)>> {
        let set = self.addr_set(refs, objects, what, &format!("NAT {rule}"))?;
        match v4_ranges(&set) {
            Some(v) => Some(v),
            None => {
                self.error_at(
                    &refs[0],
                    format!("NAT rule {rule:?}: `{what}` holds IPv6 addresses; NAT44 translates IPv4 only"),
                );
                Some(Vec::new())
            }
        }
    }

    /// One IPv4 range from a literal (address, prefix or range).
    fn v4_literal(&mut self, r: &Ref, rule: &str, what: &str) -> Option<(u32, u32)> {
        match parse_addr(&r.value) {
            Ok(range) => {
                match v4_ranges(&vec![range]) {
                    Some(v) => Some(v[0]),
                    None => {
                        self.error_at(
                        r,
                        format!("NAT rule {rule:?}: {what} {:?} is IPv6; NAT44 translates IPv4 only", r.value),
                    );
                        None
                    }
                }
            }
            Err(e) => {
                self.error_at(r, format!("NAT rule {rule:?}: {what} {:?}: {e}", r.value));
                None
            }
        }
    }

    fn nat_rule(
        &mut self,
        r: &model::NatRule,
        zones: &[(String, u8)],
        objects: &HashMap<String, Ranges>,
        port_names: Option<&[String]>,
    ) -> Option<NatRule> {
        let name = r.name.value.as_str();
        let label = format!("NAT {name}");
        let from = self.zone_mask(&r.from, zones, "from", &label);
        let to = self.zone_mask(&r.to, zones, "to", &label);
        let src = self.v4_side(&r.source, objects, "source", name);
        let dst = self.v4_side(&r.destination, objects, "destination", name);
        let mut service = Vec::new();
        if let Some(s) = &r.service {
            let list: Vec<&String> = match &s.value {
                model::Service::Keyword(k) if k == "any" => Vec::new(),
                model::Service::Keyword(k) => vec![k],
                model::Service::Ports(l) => l.iter().collect(),
            };
            for k in list {
                match parse_port(k) {
                    Ok(p) => service.push((p.proto, p.lo, p.hi)),
                    Err(e) => self.error_at(
                        s,
                        format!("NAT rule {name:?}: service {k:?}: {e} (or `any`)"),
                    ),
                }
            }
        }
        let source = match &r.source_translation {
            None => SourceNat::None,
            Some(st) => self.source_translation(st, name, &src, port_names)?,
        };
        let destination = match &r.destination_translation {
            None => None,
            Some(d) => {
                let (lo, hi) =
                    self.v4_literal(&d.value.address, name, "destination-translation address")?;
                if lo != hi {
                    self.error_at(
                        &d.value.address,
                        format!("NAT rule {name:?}: destination-translation needs one address, not {:?}", d.value.address.value),
                    );
                    return None;
                }
                if let Some(p) = &d.value.port {
                    if p.value == 0 {
                        self.error_at(
                            p,
                            format!("NAT rule {name:?}: port 0 cannot be translated to"),
                        );
                    }
                }
                Some(DestinationNat {
                    address: lo,
                    port: d.value.port.as_ref().map(|p| p.value),
                })
            }
        };
        if source == SourceNat::None && destination.is_none() {
            self.error_at(
                &r.name,
                format!("NAT rule {name:?} translates nothing: give source-translation, destination-translation or both"),
            );
            return None;
        }
        Some(NatRule {
            name: name.to_string(),
            from,
            to,
            src,
            dst,
            service,
            source,
            destination,
        })
    }

    fn source_translation(
        &mut self,
        st: &serde_saphyr::Spanned<model::SourceTranslation>,
        name: &str,
        src: &Option<Vec<(u32, u32)>>,
        port_names: Option<&[String]>,
    ) -> Option<SourceNat> {
        let t = &st.value;
        let given =
            t.interface.is_some() as u8 + (!t.pool.is_empty()) as u8 + t.static_.is_some() as u8;
        if given != 1 {
            self.error_at(
                st,
                format!("NAT rule {name:?}: source-translation needs exactly one of `interface`, `pool`, `static`"),
            );
            return None;
        }
        if t.bidirectional && t.static_.is_none() {
            self.error_at(
                st,
                format!("NAT rule {name:?}: `bidirectional` applies to `static` translation only"),
            );
        }
        if let Some(i) = &t.interface {
            return match port_names {
                None => Some(SourceNat::Interface(usize::MAX)),
                Some(names) => match names.iter().position(|n| *n == i.value) {
                    Some(p) => Some(SourceNat::Interface(p)),
                    None => {
                        self.error_at(
                            i,
                            format!(
                                "NAT rule {name:?}: no port {:?} in dataplane.yaml (its ports: {})",
                                i.value,
                                names.join(", ")
                            ),
                        );
                        None
                    }
                },
            };
        }
        if !t.pool.is_empty() {
            let mut pool = Vec::new();
            let mut total = 0u64;
            for p in &t.pool {
                let (lo, hi) = self.v4_literal(p, name, "pool address")?;
                total += hi as u64 - lo as u64 + 1;
                if total > MAX_POOL {
                    self.error_at(
                        p,
                        format!("NAT rule {name:?}: a pool may hold at most {MAX_POOL} addresses"),
                    );
                    return None;
                }
                pool.extend(lo..=hi);
            }
            pool.sort_unstable();
            pool.dedup();
            return Some(SourceNat::Pool(pool));
        }
        let s = t.static_.as_ref()?;
        let (tlo, thi) = self.v4_literal(s, name, "static")?;
        let Some(tlen) = prefix_len(tlo, thi) else {
            self.error_at(
                s,
                format!("NAT rule {name:?}: static {:?} is not one prefix", s.value),
            );
            return None;
        };
        let original = match src.as_deref() {
            Some([(lo, hi)]) => prefix_len(*lo, *hi).map(|l| (*lo, l)),
            _ => None,
        };
        match original {
            Some((olo, olen)) if olen == tlen => Some(SourceNat::Static {
                original: olo,
                translated: tlo,
                len: tlen,
                bidirectional: t.bidirectional,
            }),
            Some((_, olen)) => {
                self.error_at(
                    s,
                    format!("NAT rule {name:?}: static /{tlen} does not match the source prefix's length /{olen}"),
                );
                None
            }
            None => {
                self.error_at(
                    s,
                    format!("NAT rule {name:?}: static translation needs the rule's `source` to be one IPv4 prefix"),
                );
                None
            }
        }
    }
}
