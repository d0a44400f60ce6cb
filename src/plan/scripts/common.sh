# Shared by nixfront's steps (sourced, never run alone): the one way every step calls Nix, and
# the functions the steps share, each taking what it works on as arguments.
#
# The contract (paths, exit codes, settings) comes from the environment nixfront sets for the
# step (plan/output.rs); user data (flake references, the system) only ever come as arguments of
# the step's script, quoted, after `--` or as an option's value. This text is fixed and part of
# the frontend binary; a change to it changes the steps' cache keys.
#
# No pathname expansion (`set -f`): store names may hold `?`, and lists of paths are expanded
# unquoted on purpose.
set -euf

# What every step does first: checks the builder image has Nix, makes Nix's build users, and
# sets the Nix settings the functions below use (nix_opts, native).
setup_step() {
    : "${NIXFRONT_SECRETS:?}" "${NIXFRONT_EXIT_NO_NIX:?}" "${NIXFRONT_EXIT_CANNOT_RUN:?}" "${TMPDIR:?}" \
        "${NIXFRONT_NATIVE:?}" "${NIXFRONT_PROBES:?}" "${NIXFRONT_PROBE_STATUS:?}"
    if ! command -v nix >/dev/null 2>&1; then
        echo "nixfront: the builder image has no 'nix' on its PATH ($PATH)" >&2
        exit "$NIXFRONT_EXIT_NO_NIX"
    fi
    nix_version_facts
    add_build_users /etc
    use_settings "$NIXFRONT_SECRETS" "$TMPDIR"
    # The builder's own system (the build platform's, from nixfront): Nix builds for the
    # target system and can still build derivations for this one.
    native=$NIXFRONT_NATIVE
    # Nix's own sandbox where the step may run it (NIX_SANDBOX=true: BuildKit's insecure
    # mode); never a silent fallback to no sandbox.
    sandbox=false
    [ "${NIXFRONT_SANDBOX:-}" = 1 ] && sandbox=true
    # nix and nix-store with nixfront's settings; `nixc_for SYSTEM ...` also targets SYSTEM.
    # These come after NIX_CONFIG and the image's nix.conf on the command line, so they win.
    nix_opts="--option filter-syscalls false --option sandbox $sandbox --option sandbox-fallback false \
        --option build-users-group $build_group --option accept-flake-config false \
        --option extra-platforms $native $secret_opts"
    drop_unreachable_substituters
}

# What differs between the Nix versions nixfront supports (2.8 to today), in one place, read
# from `nix --version` (a version this cannot read is taken as a current one):
#   outputs_suffix  since 2.13 a derivation's outputs are the installable `DRV^*`, and since
#                   2.15 a bare `DRV` is the derivation file itself; before 2.13 a bare `DRV`
#                   means its outputs
#   derivation_show `nix derivation show` since 2.15, `nix show-derivation` before
#   config_show     `nix config show` since 2.20, `nix show-config` before
#   store_info      `nix store info` since 2.19, `nix store ping` before
nix_version_facts() {
    nix_version=$(nix --version 2>/dev/null || true)
    nix_version=${nix_version##* }
    major_=${nix_version%%.*}
    minor_=${nix_version#*.}
    minor_=${minor_%%.*}
    case "$major_$minor_" in
        '' | *[!0-9]*) major_=2 minor_=999 ;;
    esac
    at_least() { [ "$major_" -gt 2 ] || [ "$minor_" -ge "$1" ]; }
    outputs_suffix='^*'
    at_least 13 || outputs_suffix=
    derivation_show='derivation show'
    at_least 15 || derivation_show=show-derivation
    config_show='config show'
    at_least 20 || config_show=show-config
    store_info='store info'
    at_least 19 || store_info='store ping'
}

# Drops, for this step, the HTTP(S) substituters this builder cannot reach: Nix would try each
# in every process of the step, retrying with backoff, before building what it lacks (a minute
# a step for the official image's cache.nixos.org on a builder without internet). Every one Nix
# would use (the image's nix.conf, NIX_CONFIG, the flake's nixConfig) is asked for its
# nix-cache-info in one attempt with a bounded connect time, and the answer is kept in
# $NIXFRONT_REACH (root's alone) for $NIXFRONT_REACH_TTL seconds, so that a build asks once,
# not in every step. The rest keep Nix's order and priorities; the list Nix then uses goes last
# in NIX_CONFIG, where it wins.
drop_unreachable_substituters() {
    subs_=$(nixc $config_show 2>/dev/null | grep '^substituters = ') || return 0
    kept_=
    dropped_=
    for url_ in ${subs_#substituters = }; do
        case $url_ in
            http://* | https://*)
                if ! reachable "$url_"; then
                    dropped_=1
                    echo "nixfront: substituter $url_ is not reachable from this builder, so this step" \
                        "does without it ($why_)" >&2
                    continue
                fi
                ;;
        esac
        kept_="$kept_${kept_:+ }$url_"
    done
    [ -n "$dropped_" ] || return 0
    NIX_CONFIG="${NIX_CONFIG:-}
substituters = $kept_"
    export NIX_CONFIG
}

# Whether substituter URL answered, from what a step of the last $NIXFRONT_REACH_TTL seconds
# learnt, or asked now; why_ says why not.
reachable() { # URL
    now_=$(date +%s)
    record_=
    if [ -d "${NIXFRONT_REACH:-}" ]; then
        chmod 700 "$NIXFRONT_REACH"
        record_="$NIXFRONT_REACH/$(printf '%s' "$1" | cksum | cut -d' ' -f1)"
        # A record is data, checked before use: any build on this BuildKit could have written
        # it (cache mounts have no access control), so it decides at most whether this step
        # asks a substituter, never what runs (no arithmetic on anything but digits).
        when_=
        verdict_=
        if [ -f "$record_" ] && [ ! -L "$record_" ]; then
            IFS=' ' read -r when_ verdict_ why_ <"$record_" || true
        fi
        case "$when_:$verdict_" in
            *[!0-9]*:* | :*) ;;
            *:yes | *:no)
                age_=$((now_ - when_))
                if [ "$age_" -ge 0 ] && [ "$age_" -lt "${NIXFRONT_REACH_TTL:-0}" ]; then
                    why_="$(printf '%s' "$why_" | tr -cd '[:print:]'), found $age_ s ago"
                    [ "$verdict_" = yes ]
                    return
                fi
                ;;
        esac
    fi
    verdict_=yes
    why_=answered
    if ! err_=$(nixc $store_info --store "$1" --option connect-timeout 3 --option download-attempts 1 2>&1 >/dev/null); then
        verdict_=no
        why_=$(printf '%s\n' "$err_" | grep . | tail -n 1 | tr -d '\r')
    fi
    if [ -n "$record_" ]; then
        # A new file of root's (mktemp: never through a planted link), renamed over the record.
        new_=$(mktemp "$NIXFRONT_REACH/.record.XXXXXX")
        printf '%s %s %s\n' "$now_" "$verdict_" "$why_" >"$new_"
        mv -f "$new_" "$record_"
    fi
    [ "$verdict_" = yes ]
}

# The derivations listed in FILE as the installables of their outputs, one a line, into OUT.
outputs_of() { # FILE OUT
    while IFS= read -r drv_; do
        if [ -n "$drv_" ]; then printf '%s%s\n' "$drv_" "$outputs_suffix"; fi
    done <"$1" >"$2"
}

# Derivations never run as root: Nix runs each builder as one of the build users of group
# nixbld (the official image has them; others get them here, in the step's own ETC). The store,
# its database, nixfront's directories and the secrets stay root's, out of their reach.
build_group=nixbld
add_build_users() { # ETC
    grep -q "^$build_group:" "$1/group" 2>/dev/null && return 0
    mkdir -p "$1"
    members=
    for i in $(seq 1 32); do
        echo "nixbld$i:x:$((30000 + i)):30000:Nix build user $i:/var/empty:/bin/false" >>"$1/passwd"
        members="$members${members:+,}nixbld$i"
    done
    echo "$build_group:x:30000:$members" >>"$1/group"
}

# nixfront's defaults and the client's access tokens (in SECRETS), in a configuration file
# under TMP that only root can read, which Nix reads as the user's nix.conf: never in Nix's
# environment or on its command line, which a builder can see (`impureEnvVars`,
# /proc/*/cmdline). NIX_CONFIG comes after it, so the build's own settings win over the
# defaults. The netrc is passed by its path (secret_opts).
use_settings() { # SECRETS TMP
    conf_dir=$(mktemp -d "$2/nixfront-conf.XXXXXX")
    (
        umask 077
        printf '%s\n' "${NIXFRONT_NIX_DEFAULTS:-}" >"$conf_dir/nix.conf"
        if [ -s "$1/access-tokens" ]; then
            printf 'access-tokens = %s\n' "$(tr '\n' ' ' <"$1/access-tokens")" >>"$conf_dir/nix.conf"
        fi
    )
    NIX_USER_CONF_FILES=$conf_dir/nix.conf
    export NIX_USER_CONF_FILES
    secret_opts=
    if [ -s "$1/netrc" ]; then
        secret_opts="--option netrc-file $1/netrc"
        echo "nixfront: using the netrc from --secret id=netrc" >&2
    fi
    if [ -s "$1/access-tokens" ]; then echo "nixfront: using access tokens from --secret id=access-tokens" >&2; fi
    if [ -S "${SSH_AUTH_SOCK:-}" ]; then echo "nixfront: forwarding the SSH agent from --ssh default" >&2; fi
    if [ -s "$1/ssh-key" ]; then echo "nixfront: the remote builders' SSH key from --secret id=ssh-key" >&2; fi
}

nixc() {
    # shellcheck disable=SC2086
    nix --extra-experimental-features 'nix-command flakes' $nix_opts "$@"
}
nixc_for() {
    system=$1
    shift
    nixc --option system "$system" "$@"
}
nixstore_for() {
    system=$1
    shift
    # shellcheck disable=SC2086
    nix-store $nix_opts --option system "$system" "$@"
}

# The lines of FILE as a JSON array of strings (store paths: no quotes or backslashes).
json_lines() { # FILE
    printf '['
    sep=
    while read -r line; do printf '%s"%s"' "$sep" "$line"; sep=,; done <"$1"
    printf ']'
}

# The persistent store is mounted with sharing=private: this step has its instance to itself,
# no other Nix and no builder runs in it now. Nix gives every valid path to root, so what a
# build user owns in /nix/store is junk (a killed or failed build's output, or a plant), and a
# lock file that is not a plain file of root's, alone, was planted (Nix, as root, would follow
# a symlink there, or write into the file a hard link shares). Both go before any builder of
# this step runs. Root's own entries stay: Nix's and the builder image's (whose /nix/store may
# hold paths its database does not). `find` hands over exact names, `rm` never follows a
# symlink, and nothing else writes here meanwhile.
sweep_store() { # STORE
    [ -d "$1" ] || return 0
    doomed=$(mktemp "$TMPDIR/sweep.XXXXXX")
    find "$1" -mindepth 1 -maxdepth 1 ! -name .links \
        \( ! -user 0 -o -name '*.lock' \( ! -type f -o -links +1 \) \) -print0 >"$doomed"
    [ -s "$doomed" ] || return 0
    n=$(tr -cd '\000' <"$doomed" | wc -c)
    kib=0
    # (A name may hold a newline: only lines that start with a size and a tab count.)
    for k in $(xargs -0 du -sxk -- <"$doomed" | grep "^[0-9][0-9]*$(printf '\t')" | cut -f1); do kib=$((kib + k)); done
    xargs -0 rm -rf -- <"$doomed"
    echo "nixfront: swept $n entries that earlier builds left in the Nix store ($kib KiB)" >&2
}

# The store paths that building the installables listed in FILE would write, into OUT: the
# outputs of what Nix builds and the paths it fetches.
will_write() { # SYSTEM FILE OUT
    nixc_for "$1" build --dry-run --no-link $(cat "$2") >/dev/null 2>"$3.dry"
    grep -E '^  /nix/store/' "$3.dry" | tr -d ' ' >"$3.all" || true
    grep '\.drv$' "$3.all" | xargs -r nix-store --query --outputs >"$3" || true
    grep -v '\.drv$' "$3.all" >>"$3" || true
}

# Makes a lock file, root's own, for every store path listed in FILE, before any builder runs:
# Nix opens `<path>.lock` when it writes a path and follows a symlink there, and a builder of
# this step could otherwise plant one for a path Nix writes after its build. A build user cannot
# remove a root's file from /nix/store (it is sticky). One that is there already was left by
# an earlier step (the sweep kept it: a plain file of root's, alone) and serves as it is.
prelock() { # FILE
    while IFS= read -r p; do
        [ -n "$p" ] || continue
        (set -C && : >"$p.lock") 2>/dev/null && continue
        if [ -L "$p.lock" ] || [ "$(stat -c '%u %h' -- "$p.lock")" != "0 1" ] || [ ! -f "$p.lock" ]; then
            echo "nixfront: $p.lock exists before Nix ran and is not root's alone; refusing to build over it" >&2
            exit 1
        fi
    done <"$1"
}

# Whether this builder runs SYSTEM's programs: its own system's always; another's when the
# probe nixfront ships for it (NIXFRONT_PROBES/probe-SYSTEM, a program that only exits with
# NIXFRONT_PROBE_STATUS) runs, natively or through an emulator the builder's host registered in
# binfmt_misc. A system without a probe is left to Nix to try.
runs_here() { # SYSTEM
    [ "$1" = "$native" ] && return 0
    probe="$NIXFRONT_PROBES/probe-$1"
    [ -x "$probe" ] || return 0
    status=0
    "$probe" </dev/null >/dev/null 2>&1 || status=$?
    [ "$status" = "$NIXFRONT_PROBE_STATUS" ]
}

# `nix build ARGS...` for SYSTEM. A builder that cannot run SYSTEM's programs may still
# substitute them or hand them to remote builders: Nix builds nothing locally then
# (max-jobs 0), and when something had to be, the step ends with EXIT_CANNOT_RUN, which
# nixfront explains.
build_for() { # SYSTEM ARGS...
    system_=$1
    shift
    if runs_here "$system_"; then
        nixc_for "$system_" build "$@"
        return
    fi
    echo "nixfront: this $native builder cannot run $system_ programs; substituting and remote builders only" >&2
    nixc_for "$system_" --option max-jobs 0 build "$@" || exit "$NIXFRONT_EXIT_CANNOT_RUN"
}

# Builds the derivations listed in FILE for SYSTEM (their outputs; fetched where a substituter
# has them), with a lock file made for everything it writes.
realise_locked() { # SYSTEM FILE
    outputs_of "$2" "$2.outputs"
    will_write "$1" "$2.outputs" "$2.writes"
    prelock "$2.writes"
    build_for "$1" --no-link --print-build-logs $(cat "$2.outputs")
}

# `nix copy ARGS...` of the store paths listed in FILE, a `.drv` taken as itself, never as the
# derivation's outputs.
copy_paths() { # FILE ARGS...
    list=$(mktemp "$TMPDIR/copy.XXXXXX")
    cp "$1" "$list"
    shift
    grep -v '\.drv$' "$list" >"$list.plain" || true
    grep '\.drv$' "$list" >"$list.drvs" || true
    if [ -s "$list.plain" ]; then nixc copy --quiet "$@" $(cat "$list.plain"); fi
    if [ -s "$list.drvs" ]; then nixc copy --quiet --derivation "$@" $(cat "$list.drvs"); fi
}

# Copies the store paths listed in FILE that this store lacks from the binary cache in DIR (a
# `file://` cache a step wrote). Only content-addressed paths are taken: Nix computes their
# place from their content, and refuses every other path of such a cache, which has no
# signature (require-sigs is forced on).
copy_content_addressed() { # DIR FILE
    missing=$(mktemp "$TMPDIR/missing.XXXXXX")
    xargs -r nix-store --check-validity --print-invalid <"$2" >"$missing"
    if [ -s "$missing" ]; then copy_paths "$missing" --option require-sigs true --from "file://$1"; fi
}

# The runtime closure of the store paths listed in FILE: `nix path-info --json` into JSON and
# the paths, one a line, into LIST.
closure_of() { # FILE JSON LIST
    nixc path-info --json --recursive -- $(cat "$1") >"$2"
    nixc path-info --recursive -- $(cat "$1") >"$3"
}

# What the root packages listed in ROOTS hold, for nixfront to link into the image root:
# `INDEX d ./REL` for a directory, `INDEX f ./REL` for anything else, INDEX counting the
# packages from 0, down to $NIXFRONT_ROOT_DEPTH levels.
list_roots() { # ROOTS OUT
    i=0
    while IFS= read -r root; do
        if [ -d "$root" ]; then
            (cd "$root" && find . -mindepth 1 -maxdepth "$NIXFRONT_ROOT_DEPTH" -type d) \
                | while IFS= read -r p; do printf '%s d %s\n' "$i" "$p"; done
            (cd "$root" && find . -mindepth 1 -maxdepth "$NIXFRONT_ROOT_DEPTH" ! -type d) \
                | while IFS= read -r p; do printf '%s f %s\n' "$i" "$p"; done
        fi
        i=$((i + 1))
    done <"$1" >"$2"
}

# The store paths listed in FILE as DIR/nix/store/<base>, with nixfront's fixed times on the
# directories it makes: the same paths give a byte-identical tree.
lay_out() { # FILE DIR
    mkdir -p "$2/nix/store"
    [ -s "$1" ] && xargs cp -a -t "$2/nix/store/" -- <"$1"
    touch -h -d @1 "$2/nix/store" "$2/nix"
}

# The package step's split of the closure listed in CLOSURE: the paths no dependency layer holds
# (DEPS lists those the layers do) that are input sources (listed in SOURCES), into
# SOURCES_OUT, and the rest, the package's own, into RESULTS_OUT; each sorted.
split_closure() { # CLOSURE DEPS SOURCES SOURCES_OUT RESULTS_OUT
    split_=$(mktemp -d "$TMPDIR/split.XXXXXX")
    sort "$1" >"$split_/closure"
    sort "$2" >"$split_/deps"
    sort "$3" >"$split_/sources"
    comm -23 "$split_/closure" "$split_/deps" >"$split_/own"
    comm -12 "$split_/own" "$split_/sources" >"$4"
    comm -23 "$split_/own" "$split_/sources" >"$5"
}

# What nixfront adds to the image root, in DIR: `tmp`, mode 1777, with the fixed time.
# (BuildKit's own mkdir cannot set the sticky bit; the top layer copies this directory.)
make_extras() { # DIR
    mkdir -p "$1/tmp"
    chmod 1777 "$1/tmp"
    touch -h -d @1 "$1/tmp"
}

# The package step's manifest (closure::Manifest reads it): the results listed in RESULTS,
# the split (split_closure's two lists), the closure's path-info (JSON), into OUT.
write_package_manifest() { # RESULTS SOURCES_PART RESULTS_PART PATH_INFO OUT
    {
        printf '{"manifestVersion":%s,"results":' "$NIXFRONT_STEP_MANIFEST_VERSION"
        json_lines "$1"
        printf ',"laidOut":{"sources":'
        json_lines "$2"
        printf ',"results":'
        json_lines "$3"
        printf '},"pathInfo":'
        cat "$4"
        printf '}\n'
    } >"$5"
}

# The one-step build's manifest: the results listed in RESULTS, the package's and the flake's
# metadata (JSON, or null), the closure's path-info (JSON), into OUT.
write_single_manifest() { # RESULTS PACKAGE FLAKE PATH_INFO OUT
    {
        printf '{"manifestVersion":%s,"results":' "$NIXFRONT_SINGLE_MANIFEST_VERSION"
        json_lines "$1"
        printf ',"package":'
        cat "$2"
        printf ',"flake":'
        cat "$3"
        printf ',"pathInfo":'
        cat "$4"
        printf '}\n'
    } >"$5"
}

# The evaluation's plan (plan::derivation reads it): the derivation DRV, the derivations'
# JSON (`nix derivation show`), the source closure listed in SOURCES, the package's and the
# further packages' JSON, the flake's metadata (JSON, or null), into OUT.
write_plan() { # DRV DERIVATIONS SOURCES PACKAGE EXTRAS FLAKE OUT
    {
        printf '{"planVersion":%s,"drv":"%s","derivations":' "$NIXFRONT_PLAN_VERSION" "$1"
        cat "$2"
        printf ',"sourceClosure":'
        json_lines "$3"
        printf ',"package":'
        cat "$4"
        printf ',"extras":'
        cat "$5"
        printf ',"flake":'
        cat "$6"
        printf '}\n'
    } >"$7"
}

# With NIX_VERIFY_STORE=true, checks every path of the store against the hash its database
# records before building. Catches accidental damage.
verify_store() {
    [ "${NIXFRONT_VERIFY_STORE:-}" = 1 ] || return 0
    echo "nixfront: verifying the Nix store (NIX_VERIFY_STORE=true)" >&2
    if ! nix-store --verify --check-contents; then
        echo "nixfront: the persistent Nix store is damaged; drop it with" \
            "'docker builder prune --filter type=exec.cachemount' and build again" >&2
        exit 1
    fi
    echo "nixfront: the Nix store is consistent" >&2
}

# Records the store paths listed in FILE, and their derivations, as garbage-collector roots of
# one build (with keep-outputs a derivation keeps its build-time inputs), so that a bounded store
# keeps what the latest builds need.
record_roots() { # FILE
    roots=/nix/var/nix/gcroots/nixfront
    root_name="$(date +%s%N)-$(head -c 40 "$1" | tr -cd 'a-z0-9')"
    mkdir -p "$roots/$root_name"
    i=0
    while IFS= read -r p; do
        ln -sfn "$p" "$roots/$root_name/path-$i"
        drv=$(nix-store --query --deriver "$p" 2>/dev/null || true)
        case $drv in /nix/store/*.drv) [ -e "$drv" ] && ln -sfn "$drv" "$roots/$root_name/drv-$i" ;; esac
        i=$((i + 1))
    done <"$1"
}

# A bounded store (NIX_STORE_MAX, which gives the build a store of its own): past the bound,
# drops the roots of all but the most recent builds and collects garbage, keeping their
# closures and build-time inputs, and says so.
bound_store() {
    [ -n "${NIXFRONT_STORE_MAX:-}" ] || return 0
    roots=/nix/var/nix/gcroots/nixfront
    size=$(($(du -sxk /nix/store | cut -f1) * 1024))
    [ "$size" -gt "$NIXFRONT_STORE_MAX" ] || return 0
    for keep in 3 1; do
        echo "nixfront: the Nix store holds $size bytes, over NIX_STORE_MAX=$NIXFRONT_STORE_MAX:" \
            "collecting garbage, keeping the $keep most recent builds" >&2
        ls -1 "$roots" 2>/dev/null | sort -r | tail -n "+$((keep + 1))" \
            | while IFS= read -r old; do rm -rf -- "${roots:?}/$old"; done
        nix-store --gc --option keep-outputs true --option keep-derivations true >/dev/null 2>&1
        size=$(($(du -sxk /nix/store | cut -f1) * 1024))
        [ "$size" -le "$NIXFRONT_STORE_MAX" ] && break
    done
    echo "nixfront: the Nix store holds $size bytes after collecting garbage" >&2
    [ "$size" -le "$NIXFRONT_STORE_MAX" ] || echo "nixfront: warning: this build's own closure" \
        "and inputs exceed NIX_STORE_MAX=$NIXFRONT_STORE_MAX" >&2
}

# What every step on the persistent store does first: sweep it, then verify it if asked.
prepare_store() {
    sweep_store /nix/store
    verify_store
}
