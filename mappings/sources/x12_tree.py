"""One X12 transaction set (ST..SE) as a tree of loops, plus the 856 HL parent/child tree.

Loop boundaries come from the compiled specification (`mappings.x12.specs`): the tree is
built by following the spec's transition table, the same walk the validator does, so the
mapping and the validator agree on which loop a segment is in. Without a spec the set is
one flat node (good enough for a mapping that only reads header segments).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from mappings.x12.reader import Segment

if TYPE_CHECKING:
    from mappings.x12.specs import Candidate, TransactionSpec

ROOT_ID = "ST_LOOP"


class Node:
    """A loop instance (or the whole set): its own segments and its child loops, in order.

    `index` maps a segment id to the (segment, owner) pairs visible from this node: its own
    segments (owner None) and the trigger segments of its child loops (owner the loop), so
    a selector finds `N1` at the top of the 850 whether it is a segment or a loop.
    """

    __slots__ = ("component", "hl_children", "hl_parent", "id", "index", "loops", "root",
                 "segments", "set_start")

    def __init__(self, id: str, set_start: int, component: str = ":",
                 root: Node | None = None) -> None:
        self.id = id
        self.root: Node = root if root is not None else self  # the whole set, for `/` selectors
        self.component = component  # the interchange's component separator
        self.segments: list[Segment] = []
        self.loops: list[Node] = []
        self.index: dict[str, list[tuple[Segment, Node | None]]] = {}
        self.set_start = set_start  # file position of ST, to number segments within the set
        self.hl_parent: Node | None = None
        self.hl_children: list[Node] | None = None  # set on HL loops and on the root

    def release(self) -> None:
        """Break the tree's cycles (root, loops, HL links): freed when dropped, not at the next
        full garbage collection, so that mapping a large file set by set keeps memory flat."""
        stack = [self]
        while stack:
            node = stack.pop()
            stack.extend(node.loops)
            node.loops, node.index, node.segments = [], {}, []
            node.hl_parent = node.hl_children = None
            del node.root

    def add_segment(self, seg: Segment) -> None:
        self.segments.append(seg)
        pairs = self.index.get(seg.fields[0])
        if pairs is None:
            self.index[seg.fields[0]] = [(seg, None)]
        else:
            pairs.append((seg, None))

    def add_loop(self, loop: Node, trigger: Segment) -> None:
        self.loops.append(loop)
        pairs = self.index.get(trigger.fields[0])
        if pairs is None:
            self.index[trigger.fields[0]] = [(trigger, loop)]
        else:
            pairs.append((trigger, loop))

    @property
    def trigger(self) -> Segment | None:
        return self.segments[0] if self.segments else None

    def set_position(self, seg: Segment) -> int:
        """The segment's position within its transaction set, ST = 1."""
        return seg.position - self.set_start + 1

    def hl_descendants(self) -> list[Node]:
        """Every HL below this one (or below the root), depth first in tree order."""
        out: list[Node] = []
        stack = list(reversed(self.hl_children or ()))
        while stack:
            node = stack.pop()
            out.append(node)
            stack.extend(reversed(node.hl_children or ()))
        return out

    def __repr__(self) -> str:
        return f"Node({self.id!r}, segments={len(self.segments)}, loops={len(self.loops)})"


def segment_node(seg: Segment, parent: Node) -> Node:
    """A one-segment scope, for `each:` over repeated segments that are not loops (REF, DTM)."""
    node = Node(seg.fields[0], parent.set_start, parent.component, parent.root)
    node.add_segment(seg)
    return node


def pair_nodes(node: Node, segment: str, first: int, last: int) -> list[Node]:
    """One scope per qualifier/value element pair (first/first+1 ... last-1/last) of the first
    `segment` in scope: its fields shifted so the pair sits at `first` and `first`+1."""
    pairs = node.index.get(segment)
    if not pairs:
        return []
    seg = pairs[0][0]
    f = seg.fields
    out = []
    for at in range(first, last, 2):
        q = f[at] if at < len(f) else ""
        v = f[at + 1] if at + 1 < len(f) else ""
        if not q and not v:
            continue
        shifted = [*f[:first], q, v]
        out.append(segment_node(Segment.of(shifted, seg.position, seg.line), node))
    return out


def _matches(cand: Candidate, seg: Segment, component: str) -> bool:
    if cand.key_codes is None or cand.key_element == 0:
        return True
    f = seg.fields
    value = f[cand.key_element] if cand.key_element < len(f) else ""
    if cand.key_component:
        parts = value.split(component)
        value = parts[cand.key_component - 1] if cand.key_component <= len(parts) else ""
    return value in cand.key_codes


def build_tree(segments: Sequence[Segment], spec: TransactionSpec | None = None, *,
               component: str = ":") -> Node:
    """The loop tree of one transaction set; `segments` runs from ST to SE inclusive."""
    start = segments[0].position if segments else 1
    root = Node(ROOT_ID, start, component)
    if spec is None:
        for seg in segments:
            root.add_segment(seg)
        link_hl(root)
        return root
    ends, ids, transitions = spec.ends, spec.ids, spec.transitions
    # Open loops as parallel stacks of (spec node index, tree node); 0 is ST_LOOP. This loop
    # runs once per segment of every mapped document, hence the inlined bookkeeping.
    idx_stack: list[int] = [0]
    node_stack: list[Node] = [root]
    top_idx, top = 0, root
    state = spec.start
    it = iter(segments)
    first = next(it, None)
    if first is not None:
        root.add_segment(first)
    for seg in it:
        sid = seg.fields[0]
        chosen = None
        for cand in transitions[state].get(sid, ()):
            if cand.key_codes is None or _matches(cand, seg, component):
                chosen = cand
                break
        if chosen is None:
            # Out of place (the validator reports it): keep it where it was found.
            top.add_segment(seg)
            continue
        state = chosen.target
        enter = chosen.enter_loop
        target = enter if enter >= 0 else state
        # Close loops until the top one contains the target; wrappers are never pushed.
        while top_idx and not (top_idx < target < ends[top_idx]):
            idx_stack.pop()
            node_stack.pop()
            top_idx, top = idx_stack[-1], node_stack[-1]
        if enter >= 0:
            loop = Node(ids[enter], start, component, root)
            top.add_loop(loop, seg)
            idx_stack.append(enter)
            node_stack.append(loop)
            top_idx, top = enter, loop
        top.segments.append(seg)
        pairs = top.index.get(sid)
        if pairs is None:
            top.index[sid] = [(seg, None)]
        else:
            pairs.append((seg, None))
    link_hl(root)
    return root


def _walk(node: Node) -> Iterable[Node]:
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        stack.extend(reversed(n.loops))


def link_hl(root: Node) -> None:
    """Link HL loops by HL01 (id) and HL02 (parent id), whatever order the levels come in."""
    hls = [n for n in _walk(root) if n.id == "HL" and n.segments and n.segments[0].fields[0] == "HL"]
    if not hls:
        return
    by_id: dict[str, Node] = {}
    for n in hls:
        n.hl_children = []
        by_id.setdefault(n.segments[0].get(1), n)
    root.hl_children = []
    for n in hls:
        parent = by_id.get(n.segments[0].get(2)) if n.segments[0].get(2) else None
        if parent is None or parent is n:
            root.hl_children.append(n)
        else:
            n.hl_parent = parent
            parent.hl_children.append(n)  # type: ignore[union-attr]


def hl_level(node: Node) -> str:
    """HL03 of an HL loop: S shipment, O order, T tare, P pack, I item."""
    return node.segments[0].get(3) if node.segments else ""


def split_sets(segments: Iterable[Segment]) -> Iterable[list[Segment]]:
    """The ST..SE runs of a stream of segments, one list per transaction set."""
    current: list[Segment] | None = None
    for seg in segments:
        sid = seg.fields[0]
        if sid == "ST":
            current = [seg]
        elif current is not None:
            current.append(seg)
            if sid == "SE":
                yield current
                current = None
