//! The jump/goto graph: loops (every edge of the cycle labelled at its rule), jump depth
//! (the kernel's `nft_chain_validate` refuses a chain reached at level
//! `NFT_JUMP_STACK_SIZE` = 16, base chain = level 0; jump and goto both count), and user
//! chains no base chain reaches (a warning).

use crate::diag::{Diagnostic, Span};
use crate::hir::{ChainId, Element, Hir, MapData, VerdictKind, VmapRef};

/// NFT_JUMP_STACK_SIZE.
pub const NFT_JUMP_STACK_SIZE: usize = 16;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Edge {
    pub from: ChainId,
    pub to: ChainId,
    pub goto: bool,
    /// The verdict (or vmap element) that makes the edge.
    pub span: Span,
}

#[derive(Clone, Debug, Default)]
pub struct Node {
    pub name: String,
    pub is_base: bool,
    pub span: Span,
}

/// Chains (indexed by `ChainId`) and their jump/goto edges, within one ruleset.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
}

impl Graph {
    /// Outgoing edges of every node, built in one pass.
    pub fn adjacency(&self) -> Vec<Vec<&Edge>> {
        let mut adj: Vec<Vec<&Edge>> = vec![Vec::new(); self.nodes.len()];
        for e in &self.edges {
            if let Some(a) = adj.get_mut(e.from.0 as usize) {
                a.push(e);
            }
        }
        adj
    }
    fn name(&self, n: ChainId) -> &str {
        self.nodes
            .get(n.0 as usize)
            .map_or("?", |x| x.name.as_str())
    }
    fn verb(e: &Edge) -> &'static str {
        if e.goto { "goes to" } else { "jumps to" }
    }
}

/// Build the graph from a Hir (jump/goto verdicts, anonymous and named verdict maps).
pub fn graph_from_hir(hir: &Hir) -> Graph {
    let mut g = Graph::default();
    for c in &hir.chains {
        g.nodes.push(Node {
            name: c.name.clone(),
            is_base: c.base().is_some(),
            span: c.span,
        });
    }
    for c in &hir.chains {
        for r in &c.rules {
            let vmaps = r.items.iter().filter_map(|i| match i {
                crate::hir::Item::Vmap(v) => Some(v),
                _ => None,
            });
            for v in vmaps.chain(r.verdict.iter()) {
                let mut push = |kind: &VerdictKind, span: Span| match kind {
                    VerdictKind::Jump(t) => g.edges.push(Edge {
                        from: c.id,
                        to: *t,
                        goto: false,
                        span,
                    }),
                    VerdictKind::Goto(t) => g.edges.push(Edge {
                        from: c.id,
                        to: *t,
                        goto: true,
                        span,
                    }),
                    _ => {}
                };
                match &v.kind {
                    VerdictKind::Vmap { map, .. } => {
                        let mut each = |e: &Element| {
                            if let Some(MapData::Verdict(d)) = e.data.as_deref() {
                                // label the edge at the rule's vmap for named maps, at the element otherwise
                                let span = if matches!(&**map, VmapRef::Named(_)) {
                                    v.span
                                } else {
                                    d.span
                                };
                                push(&d.kind, span);
                            }
                        };
                        match &**map {
                            VmapRef::Anon(a) => a.elements.iter().for_each(each),
                            VmapRef::Named(id) => {
                                for e in hir.set(*id).into_iter().flat_map(|s| s.elements.iter()) {
                                    each(&e);
                                }
                            }
                        }
                    }
                    k => push(k, v.span),
                }
            }
        }
    }
    g
}

/// All graph diagnostics: loops (E0500), depth (E0501), unreachable user chains (W0600).
pub fn check_graph(g: &Graph) -> Vec<Diagnostic> {
    let mut diags = find_loops(g);
    if diags.is_empty() {
        diags.extend(check_depth(g));
    }
    diags.extend(unreachable(g));
    diags
}

fn find_loops(g: &Graph) -> Vec<Diagnostic> {
    // Iterative DFS; every back edge closes one cycle, reported with all its edges.
    let n = g.nodes.len();
    let mut color = vec![0u8; n]; // 0 white, 1 on stack, 2 done
    let mut diags = Vec::new();
    let adj = g.adjacency();
    for root in 0..n {
        if color[root] != 0 {
            continue;
        }
        // stack of (node, next edge index); path_edges[i] = edge taken from stack[i]
        let mut stack: Vec<(usize, usize)> = vec![(root, 0)];
        let mut path_edges: Vec<&Edge> = Vec::new();
        color[root] = 1;
        while let Some(&mut (node, ref mut idx)) = stack.last_mut() {
            let Some(e) = adj.get(node).and_then(|a| a.get(*idx)).copied() else {
                color[node] = 2;
                stack.pop();
                path_edges.pop();
                continue;
            };
            *idx += 1;
            let to = e.to.0 as usize;
            match color.get(to).copied() {
                Some(0) => {
                    color[to] = 1;
                    stack.push((to, 0));
                    path_edges.push(e);
                }
                Some(1) => {
                    // cycle: from the stack position of `to` to here, then the back edge
                    let pos = stack.iter().position(|(x, _)| *x == to).unwrap_or(0);
                    let mut cycle: Vec<&Edge> = path_edges
                        .get(pos..)
                        .map(|s| s.to_vec())
                        .unwrap_or_default();
                    cycle.push(e);
                    diags.push(loop_diag(g, &cycle));
                }
                _ => {}
            }
        }
    }
    diags
}

fn loop_diag(g: &Graph, cycle: &[&Edge]) -> Diagnostic {
    let names: Vec<&str> = cycle.iter().map(|e| g.name(e.from)).collect();
    let mut path = names.join(" → ");
    if let Some(first) = names.first() {
        path.push_str(" → ");
        path.push_str(first);
    }
    let last = cycle.last().copied();
    let primary = last.map_or(Span::default(), |e| e.span);
    let mut d = Diagnostic::error(
        "E0500",
        primary,
        format!("loop in the jump/goto graph: {path}"),
    );
    if let Some(e) = last {
        d = d.with_primary_label(format!(
            "`{}` {} `{}` here, closing the loop",
            g.name(e.from),
            Graph::verb(e),
            g.name(e.to)
        ));
    }
    for e in cycle.iter().take(cycle.len().saturating_sub(1)) {
        d = d.with_label(
            e.span,
            format!(
                "`{}` {} `{}` here",
                g.name(e.from),
                Graph::verb(e),
                g.name(e.to)
            ),
        );
    }
    d.with_note("the kernel refuses rulesets whose jumps and gotos form a loop (ELOOP)")
        .with_help("break the cycle, e.g. replace one of these jumps by `return` or move the shared rules to a third chain")
}

fn check_depth(g: &Graph) -> Vec<Diagnostic> {
    // Graph is acyclic here. longest[n] = (edges, next edge) of the longest path from n.
    let n = g.nodes.len();
    let mut memo: Vec<Option<(usize, Option<usize>)>> = vec![None; n];
    let mut adj: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, e) in g.edges.iter().enumerate() {
        if let Some(a) = adj.get_mut(e.from.0 as usize) {
            a.push(i);
        }
    }
    // Iterative post-order (no recursion: chains may be many and deep).
    let longest = |start: usize, memo: &mut Vec<Option<(usize, Option<usize>)>>| -> usize {
        let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
        while let Some(&mut (node, ref mut k)) = stack.last_mut() {
            if memo.get(node).is_some_and(Option::is_some) {
                stack.pop();
                continue;
            }
            let out = adj.get(node).map_or(&[][..], Vec::as_slice);
            if let Some(&ei) = out.get(*k) {
                *k += 1;
                let to = g.edges[ei].to.0 as usize;
                if to < n && memo[to].is_none() {
                    stack.push((to, 0));
                }
                continue;
            }
            let mut best = (0usize, None);
            for &ei in out {
                let to = g.edges[ei].to.0 as usize;
                let d = 1 + memo.get(to).copied().flatten().map_or(0, |m| m.0);
                if d > best.0 {
                    best = (d, Some(ei));
                }
            }
            memo[node] = Some(best);
            stack.pop();
        }
        memo.get(start).copied().flatten().map_or(0, |m| m.0)
    };
    let mut diags = Vec::new();
    for (i, node) in g.nodes.iter().enumerate() {
        if !node.is_base {
            continue;
        }
        let depth = longest(i, &mut memo);
        if depth < NFT_JUMP_STACK_SIZE {
            continue;
        }
        // walk the path
        let mut path = Vec::new();
        let mut cur = i;
        while let Some(Some((_, Some(ei)))) = memo.get(cur) {
            let Some(e) = g.edges.get(*ei) else { break };
            path.push(e);
            cur = e.to.0 as usize;
            if path.len() > n {
                break;
            }
        }
        let culprit = path.get(NFT_JUMP_STACK_SIZE - 1).copied();
        let primary = culprit.map_or(node.span, |e| e.span);
        let chain_names: Vec<&str> = std::iter::once(node.name.as_str())
            .chain(path.iter().map(|e| g.name(e.to)))
            .collect();
        let mut d = Diagnostic::error(
            "E0501",
            primary,
            format!(
                "jump depth {depth} from base chain `{}` exceeds the kernel's limit of {} (NFT_JUMP_STACK_SIZE = 16)",
                node.name,
                NFT_JUMP_STACK_SIZE - 1
            ),
        );
        if let Some(e) = culprit {
            d = d.with_primary_label(format!(
                "level {NFT_JUMP_STACK_SIZE}: `{}` {} `{}` here",
                g.name(e.from),
                Graph::verb(e),
                g.name(e.to)
            ));
        }
        // only the path up to the level the kernel refuses
        for (k, e) in path.iter().enumerate().take(NFT_JUMP_STACK_SIZE) {
            if k + 1 == NFT_JUMP_STACK_SIZE {
                continue;
            }
            d = d.with_label(
                e.span,
                format!(
                    "level {}: `{}` {} `{}`",
                    k + 1,
                    g.name(e.from),
                    Graph::verb(e),
                    g.name(e.to)
                ),
            );
        }
        d = d
            .with_note(if chain_names.len() > 24 {
                format!(
                    "path: {} → … ({} chains)",
                    chain_names[..NFT_JUMP_STACK_SIZE + 1].join(" → "),
                    chain_names.len()
                )
            } else {
                format!("path: {}", chain_names.join(" → "))
            })
            .with_note("the kernel refuses a chain reached at jump level 16 (EMLINK); base chains are level 0")
            .with_help("flatten the chain hierarchy, or use `goto` plus shared chains to keep it shallower");
        diags.push(d);
    }
    diags
}

fn unreachable(g: &Graph) -> Vec<Diagnostic> {
    let n = g.nodes.len();
    let mut seen = vec![false; n];
    let adj = g.adjacency();
    let mut work: Vec<usize> = (0..n).filter(|i| g.nodes[*i].is_base).collect();
    for &w in &work {
        seen[w] = true;
    }
    while let Some(x) = work.pop() {
        for e in adj.get(x).map_or(&[][..], Vec::as_slice) {
            let t = e.to.0 as usize;
            if let Some(s) = seen.get_mut(t)
                && !*s
            {
                *s = true;
                work.push(t);
            }
        }
    }
    g.nodes
        .iter()
        .enumerate()
        .filter(|(i, node)| !node.is_base && !seen[*i])
        .map(|(_, node)| {
            Diagnostic::warning(
                "W0600",
                node.span,
                format!("chain `{}` is never reached from a base chain", node.name),
            )
            .with_primary_label("no jump, goto or vmap from a base chain leads here")
            .with_help("jump to it from a base chain, or remove it")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::FileId;

    fn sp(i: usize) -> Span {
        Span::new(FileId(0), i, i + 1)
    }
    fn graph(nodes: &[(&str, bool)], edges: &[(u32, u32, bool)]) -> Graph {
        Graph {
            nodes: nodes
                .iter()
                .enumerate()
                .map(|(i, (n, b))| Node {
                    name: n.to_string(),
                    is_base: *b,
                    span: sp(i * 100),
                })
                .collect(),
            edges: edges
                .iter()
                .enumerate()
                .map(|(i, (a, b, goto))| Edge {
                    from: ChainId(*a),
                    to: ChainId(*b),
                    goto: *goto,
                    span: sp(1000 + i),
                })
                .collect(),
        }
    }

    #[test]
    fn two_cycle_is_reported_with_both_edges() {
        let g = graph(
            &[("in", true), ("a", false), ("b", false)],
            &[(0, 1, false), (1, 2, false), (2, 1, true)],
        );
        let d = check_graph(&g);
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(d[0].code, "E0500");
        assert!(d[0].message.contains("a → b → a"), "{}", d[0].message);
        assert_eq!(d[0].primary, sp(1002));
        assert_eq!(
            d[0].labels,
            vec![(sp(1001), "`a` jumps to `b` here".to_string())]
        );
        assert!(d[0].primary_label.contains("`b` goes to `a`"));
    }

    #[test]
    fn self_loop() {
        let g = graph(
            &[("in", true), ("a", false)],
            &[(0, 1, false), (1, 1, false)],
        );
        let d = check_graph(&g);
        assert_eq!(d.len(), 1);
        assert!(d[0].message.contains("a → a"));
    }

    #[test]
    fn unreachable_cycle_is_still_a_loop() {
        let g = graph(
            &[("x", false), ("y", false)],
            &[(0, 1, false), (1, 0, false)],
        );
        let d = check_graph(&g);
        assert_eq!(d.iter().filter(|d| d.code == "E0500").count(), 1);
        assert_eq!(d.iter().filter(|d| d.code == "W0600").count(), 2);
    }

    fn chain_graph(len: usize) -> Graph {
        let mut nodes = vec![("base".to_string(), true)];
        for i in 1..=len {
            nodes.push((format!("c{i}"), false));
        }
        let nodes: Vec<(&str, bool)> = nodes.iter().map(|(n, b)| (n.as_str(), *b)).collect();
        let edges: Vec<(u32, u32, bool)> = (0..len as u32).map(|i| (i, i + 1, false)).collect();
        graph(&nodes, &edges)
    }

    #[test]
    fn depth_limit_matches_kernel() {
        assert!(check_graph(&chain_graph(15)).is_empty());
        let d = check_graph(&chain_graph(16));
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(d[0].code, "E0501");
        assert_eq!(d[0].primary, sp(1000 + 15));
        assert_eq!(d[0].labels.len(), 15);
    }

    #[test]
    fn diamond_is_not_a_loop_and_all_reachable() {
        let g = graph(
            &[("in", true), ("a", false), ("b", false), ("c", false)],
            &[(0, 1, false), (0, 2, false), (1, 3, false), (2, 3, true)],
        );
        assert!(check_graph(&g).is_empty());
    }
}
