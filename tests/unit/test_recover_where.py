"""The OIDs read from a PostgreSQL node tree: only real fields count, never text inside a name."""

from __future__ import annotations

from ops.sync.recover_where import references


def test_references_reads_fields_and_not_escaped_names():
    tree = (
        r"({QUERY :targetList ({TARGETENTRY :resname a\ :funcid\ 99 :expr {FUNCEXPR :funcid 2080 :args "
        r"({OPEXPR :opno 96 :opfuncid 65 :location 12})}}) :rtable ({RANGETBLENTRY :relid 16384 :relkind r}) :resulttype 23 :ctecoltypes (o 25 16) "
        r":quals {ROWCOMPAREEXPR :opnos (o 97 664) :location 40} :alias :funcid :x {AGGREF :aggfnoid 2147}})"
    )
    functions, operators, types = references(tree)
    assert functions == {2080, 65, 2147}
    assert operators == {96, 97, 664}
    assert types == {23, 25, 16}, "a relation's OID is no type; every OID of a type list is"
