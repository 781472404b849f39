//! Lowerings from Hir (bytecode, iptables blob); written later.
