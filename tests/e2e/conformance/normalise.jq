# tests/e2e/conformance/normalise.jq — jq functions shared by the conformance suite (jq 1.6:
# the kernel VM has 1.6, so nothing newer). Included with `jq -L DIR 'include "normalise"; …'`.
#
# Only what must differ between two pods is normalised: a random MAC (→ "<mac>", unless it is
# in $keep: the configured MAC or the ipvlan master's, which both sides must show literally),
# the sandbox (→ "<own netns>" when it is the side's own netns path), an IPv6 link-local address
# derived from a random MAC (→ "<link-local>"), lifetimes and ifindexes.

def is_mac: type == "string" and test("^([0-9a-f]{2}:){5}[0-9a-f]{2}$");
def norm_mac($keep):
    if is_mac then (. as $m | if ([$keep[] | select(. == $m)] | length) > 0 then . else "<mac>" end)
    else . end;
def is_ll: type == "string" and test("^fe80::[0-9a-f:]+$") and . != "fe80::";

# A CNI result (any version) as printed by cnitool.
def norm_result($sandbox; $keep):
    if (.interfaces | type) == "array" then
        .interfaces |= map(
            (if has("mac") then .mac |= norm_mac($keep) else . end)
            | (if .sandbox == $sandbox then .sandbox = "<own netns>" else . end))
    else . end;

# `ip -d -j link show dev IF`, first element.
def norm_link($keep):
    del(.ifindex, .stats64, .stats)
    | (if has("address") then .address |= norm_mac($keep) else . end)
    | (if has("perm_address") then .perm_address |= norm_mac($keep) else . end);

# `ip -j addr show dev IF`, first element's addr_info: what the kernel holds, in order.
def norm_addrs:
    map(del(.valid_life_time, .preferred_life_time, .tentative, .dadfailed, .optimistic)
        | (if (.local | is_ll) then .local = "<link-local>" else . end));

# `ip -j -d route show table all`: every route of the pod, its link-local ones normalised.
def norm_routes:
    map(del(.expires) | (if (.dst | is_ll) then .dst = "<link-local>" else . end)
        | (if (.prefsrc | is_ll) then .prefsrc = "<link-local>" else . end));

# Leaves of a JSON document as {"a.b.0.c": value}; empty arrays/objects are leaves too.
def leaves: . as $d
    | reduce (paths | select(. as $p | $d | getpath($p)
                              | ((type != "object" and type != "array") or length == 0))) as $p
        ({}; . + {($p | map(tostring) | join(".")): ($d | getpath($p))});

# Whether key $k of leaves $X is an empty container that leaves $Y fills (reported by the
# filled side's own leaves: "x: [], x.0: 1" would say the same thing twice).
def filled_in($X; $Y; $k): ($X | has($k)) and ($X[$k] | (type == "array" or type == "object") and length == 0)
    and ($Y | has($k) | not) and ([$Y | keys[] | select(startswith($k + "."))] | length > 0);

# Field-by-field differences of reference $a and ours $b, one line each.
def field_diff($a; $b): ($a | leaves) as $A | ($b | leaves) as $B
    | (($A | keys) + ($B | keys) | unique)[] as $k
    | select(($A | has($k)) != ($B | has($k)) or $A[$k] != $B[$k])
    | select((filled_in($A; $B; $k) or filled_in($B; $A; $k)) | not)
    | "\($k): reference \(if $A | has($k) then $A[$k] | tojson else "absent" end), ours \(if $B | has($k) then $B[$k] | tojson else "absent" end)";

# Routes keyed by "TYPE DST dev DEV" (one key per route; " #n" when a key repeats, e.g. the
# same route in two tables), so a diff names the route instead of a position in the list.
def keyed_routes:
    group_by("\(.type) \(.dst) dev \(.dev)")
    | map(length as $n | to_entries
          | map({key: ("\(.value.type) \(.value.dst) dev \(.value.dev)" + (if $n > 1 then " #\(.key)" else "" end)),
                 value: (.value | del(.type, .dst, .dev))}))
    | add // [] | from_entries;
