#!/usr/bin/env bash
# A real single-node Apache Kafka broker (KRaft, broker+controller in one JVM)
# for development and tests, built from Maven Central jars: no Docker and no
# Kafka tarball are needed, only Java 17 and Maven.
#
# Usage: scripts/kafka.sh start|stop|status|checksums
#
#   start   fetch the jars once, then start a broker on 127.0.0.1 and print its
#           bootstrap address as the LAST line of stdout. Idempotent: if this
#           state dir's broker already runs, it just prints its address.
#           A state dir that was started before keeps its ports and its data
#           (no reformat), so stop+start is a real restart.
#   stop    SIGTERM the broker this script started (pid file), SIGKILL after
#           $KAFKA_STOP_TIMEOUT seconds.
#   status  "running <address> (pid N)" and exit 0, or "not running" and exit 1.
#   checksums  fetch the jars the pom names into a scratch folder and rewrite
#           scripts/kafka/jars.sha256 from them (after changing the pom; review the diff).
#
# Every fetched jar must match scripts/kafka/jars.sha256 (SHA-256), and Maven itself checks
# the checksums Maven Central publishes (-C): a jar that differs, is missing or is not listed
# stops the start.
#
# Environment:
#   KAFKA_STATE_DIR      config, pid, log and data (default .cache/kafka/run)
#   KAFKA_PORT           PLAINTEXT port for a new state dir (default: a free one)
#   KAFKA_HEAP_OPTS      default "-Xms256m -Xmx512m"
#   KAFKA_START_TIMEOUT  seconds to wait for readiness (default 60)
#   KAFKA_STOP_TIMEOUT   seconds before SIGKILL (default 30)
#   JAVA_HOME            optional; otherwise `java` from PATH

set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
POM="$REPO_ROOT/scripts/kafka/pom.xml"
CHECKSUMS="$REPO_ROOT/scripts/kafka/jars.sha256"
LOG4J_CONF="$REPO_ROOT/scripts/kafka/log4j2.properties"
CACHE_DIR="$REPO_ROOT/.cache/kafka"
LIBS_DIR="$CACHE_DIR/libs"
LIBS_MARKER="$LIBS_DIR/.fetched"

STATE_DIR="${KAFKA_STATE_DIR:-$CACHE_DIR/run}"
START_TIMEOUT="${KAFKA_START_TIMEOUT:-60}"
STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"
HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}"
JAVA="${JAVA_HOME:+$JAVA_HOME/bin/}java"

# Kafka prints this (logger kafka.server.KafkaRaftServer) once both the
# controller and the broker are up and the listeners accept requests.
READY_MESSAGE="Kafka Server started"

log() { echo "kafka.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

# Paths are written into server.properties and compared against the running
# process's command line, so they must not depend on the caller's cwd.
# Only `start` creates the dir; stop/status on a missing one just report.
resolve_state_dir() {
    if [[ "${1:-}" == create ]]; then
        mkdir -p "$STATE_DIR"
    elif [[ ! -d "$STATE_DIR" ]]; then
        return 1
    fi
    STATE_DIR="$(cd "$STATE_DIR" && pwd)"
    PROPS="$STATE_DIR/server.properties"
    PID_FILE="$STATE_DIR/kafka.pid"
    SERVER_LOG="$STATE_DIR/server.log"
    DATA_DIR="$STATE_DIR/data"
}

# --- jars --------------------------------------------------------------------

# The marker holds the pom's checksum: editing the pom (e.g. a version bump)
# triggers a fresh fetch, anything else reuses the cache. A cache is verified against
# jars.sha256 once (after its fetch, or the first time this list is seen).
fetch_libs() {
    local want
    want="$(sha256sum "$POM" | cut -d' ' -f1)"
    if [[ -f "$LIBS_MARKER" && "$(cat "$LIBS_MARKER")" == "$want" ]]; then
        verified_once
        return 0
    fi
    mkdir -p "$CACHE_DIR"
    # Two callers (e.g. parallel test sessions) must not fetch into the same
    # folder at once; the second one waits and then sees the marker.
    exec 8>"$CACHE_DIR/.fetch.lock"
    flock 8
    if [[ -f "$LIBS_MARKER" && "$(cat "$LIBS_MARKER")" == "$want" ]]; then
        exec 8>&-
        return 0
    fi
    log "fetching Kafka jars from Maven Central into $LIBS_DIR (once)"
    command -v mvn >/dev/null || die "mvn not found (Maven is needed for the first start)"
    # Fetch into a scratch folder and swap it in, so an interrupted fetch never
    # leaves a half-filled libs/ that looks complete.
    local tmp="$CACHE_DIR/libs.tmp"
    rm -rf "$tmp"
    # -q hides progress but still prints errors. Debian's Maven 3.8 emits bare
    # colour-reset escapes even with -B, hence the sed; its output goes to
    # stderr so stdout stays reserved for the address.
    mvn_fetch "$tmp"
    verify_jars "$tmp"
    sha256sum "$CHECKSUMS" | cut -d' ' -f1 >"$tmp/.verified"
    rm -rf "$LIBS_DIR"
    mv "$tmp" "$LIBS_DIR"
    echo "$want" >"$LIBS_MARKER"
    exec 8>&-
}

verified_once() {  # a cache fetched before jars.sha256 (or this version of it) existed
    local list
    list="$(sha256sum "$CHECKSUMS" | cut -d' ' -f1)"
    [[ -f "$LIBS_DIR/.verified" && "$(cat "$LIBS_DIR/.verified")" == "$list" ]] && return 0
    verify_jars "$LIBS_DIR"
    echo "$list" >"$LIBS_DIR/.verified"
}

mvn_fetch() {  # mvn_fetch DIR: the pom's runtime jars into DIR
    # -C: fail when a download does not match the checksum Maven Central publishes.
    mvn -q -B -C -f "$POM" dependency:copy-dependencies \
        -DoutputDirectory="$1" -DincludeScope=runtime 2>&1 \
        | sed 's/\x1b\[[0-9;]*m//g' >&2 \
        || die "maven could not fetch the Kafka jars"
}

# Every jar in DIR is listed in jars.sha256 with its SHA-256, and every listed jar is there.
verify_jars() {
    local dir="$1" listed present
    listed="$(grep -v '^#' "$CHECKSUMS" | awk 'NF {print $2}' | sort)"
    present="$(cd "$dir" && find . -maxdepth 1 -name '*.jar' -printf '%f\n' | sort)"
    if [[ "$listed" != "$present" ]]; then
        diff <(echo "$listed") <(echo "$present") >&2 || true
        die "the fetched jars are not the ones $CHECKSUMS lists (< listed, > fetched)"
    fi
    (cd "$dir" && grep -v '^#' "$CHECKSUMS" | sha256sum --check --quiet --strict -) >&2 \
        || die "a fetched jar does not match its SHA-256 in $CHECKSUMS"
}

cmd_checksums() {
    command -v mvn >/dev/null || die "mvn not found"
    local tmp
    tmp="$(mktemp -d)"
    mvn_fetch "$tmp"
    {
        echo "# SHA-256 of every jar scripts/kafka.sh fetches (scripts/kafka/pom.xml's runtime closure),"
        echo "# checked after each fetch: a jar that differs, is missing or is not listed stops the broker"
        echo "# from starting. Regenerate after changing the pom: scripts/kafka.sh checksums."
        (cd "$tmp" && sha256sum ./*.jar | sed 's#  \./#  #' | sort -k2)
    } >"$CHECKSUMS"
    rm -rf "$tmp"
    log "wrote $CHECKSUMS"
}

# --- small helpers -----------------------------------------------------------

prop() {  # prop KEY -> value from server.properties (empty if absent)
    sed -n "s/^$1=//p" "$PROPS" | tail -n 1
}

port_in_use() {  # something already listens on 127.0.0.1:$1
    timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

# Picks from 20000-29999: below the kernel's ephemeral range (32768+), so an
# outgoing connection is unlikely to sit on the port when a restart rebinds it.
free_port() {
    local avoid="${1:-}" p
    for _ in $(seq 1 200); do
        p=$((20000 + RANDOM % 10000))
        [[ "$p" == "$avoid" ]] && continue
        port_in_use "$p" || { echo "$p"; return 0; }
    done
    die "no free port found on 127.0.0.1"
}

# A zombie still answers kill -0; where nothing reaps orphans (PID 1 in some
# containers) a dead broker would otherwise look alive forever.
alive() {
    local state
    # Field 3 of /proc/PID/stat, read after the ")" that closes the command name.
    state="$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)" || return 1
    [[ -n "$state" && "$state" != Z ]]
}

# The pid file alone is not trusted: after a reboot or a crash its pid may
# belong to an unrelated process, which `stop` must never signal.
running_pid() {
    [[ -f "$PID_FILE" ]] || return 1
    local pid
    pid="$(cat "$PID_FILE")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    alive "$pid" || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "kafka.Kafka $PROPS" || return 1
    echo "$pid"
}

address() {
    local adv
    adv="$(prop advertised.listeners)"
    echo "${adv#PLAINTEXT://}"
}

# Kafka's cluster ids are 16 random bytes in unpadded URL-safe base64. Made
# here rather than with `StorageTool random-uuid` to save a JVM start; ids
# starting with '-' are skipped, as Kafka does, because tools read them as flags.
new_cluster_id() {
    local id
    while :; do
        id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
        [[ "$id" != -* ]] && { echo "$id"; return 0; }
    done
}

# --- start -------------------------------------------------------------------

write_properties() {
    local port="$1" cport="$2"
    cat >"$PROPS" <<EOF
# Generated by scripts/kafka.sh for a single-node dev/test broker. Kept across
# restarts so the broker comes back on the same port with the same data.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=$DATA_DIR

# One node: every internal topic must fit on it.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1

num.partitions=4
auto.create.topics.enable=true
# Tests create groups constantly; the default 3 s delay would slow each one.
group.initial.rebalance.delay.ms=0
# Retention and compaction act within seconds rather than minutes, so the erasure tests can
# watch an erased user leave every topic (the topics' own settings say how soon).
log.retention.check.interval.ms=2000
log.cleaner.backoff.ms=1000
EOF
}

configure() {
    if [[ -f "$PROPS" ]]; then
        local port
        port="$(prop advertised.listeners)"; port="${port##*:}"
        if [[ -n "${KAFKA_PORT:-}" && "$KAFKA_PORT" != "$port" ]]; then
            die "$STATE_DIR is set up for port $port, not KAFKA_PORT=$KAFKA_PORT; unset KAFKA_PORT or use a fresh KAFKA_STATE_DIR"
        fi
        return 0
    fi
    local port cport
    if [[ -n "${KAFKA_PORT:-}" ]]; then
        port="$KAFKA_PORT"
        port_in_use "$port" && die "KAFKA_PORT=$port is already in use"
    else
        port="$(free_port)"
    fi
    cport="$(free_port "$port")"
    write_properties "$port" "$cport"
}

# Formatting writes meta.properties and, with --standalone, the bootstrap
# checkpoint that makes this node the sole voter of its controller quorum.
# A formatted dir is never formatted again: that is what keeps data across
# restarts.
format_storage() {
    [[ -f "$DATA_DIR/meta.properties" ]] && return 0
    local cluster_id
    cluster_id="$(new_cluster_id)"
    log "formatting $DATA_DIR (cluster id $cluster_id)"
    "$JAVA" -Xmx256m -Dlog4j2.configurationFile="$LOG4J_CONF" \
        -cp "$LIBS_DIR/*" kafka.tools.StorageTool \
        format --standalone -t "$cluster_id" -c "$PROPS" \
        >>"$STATE_DIR/format.log" 2>&1 \
        || { tail -n 20 "$STATE_DIR/format.log" >&2; die "storage format failed (see $STATE_DIR/format.log)"; }
}

launch() {
    # One log per run: the readiness check greps it, and an old run's
    # "started" line must not count. The previous run's log stays one step back.
    [[ -f "$SERVER_LOG" ]] && mv -f "$SERVER_LOG" "$SERVER_LOG.prev"
    # setsid: the broker must outlive the caller and not get the caller's
    # Ctrl-C; only `stop` ends it. All fds are redirected (and the lock fd 9
    # closed) so a caller capturing our stdout is not kept waiting for EOF.
    # `exec` keeps the pid written by the inner shell equal to the JVM's.
    # SC2016: $$/$0/$@ are meant for the inner shell. SC2086: HEAP_OPTS is a
    # list of JVM flags and must split.
    # shellcheck disable=SC2016,SC2086
    setsid nohup bash -c 'echo $$ >"$0"; exec "$@"' "$PID_FILE" \
        "$JAVA" $HEAP_OPTS \
        -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError \
        -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="$LOG4J_CONF" \
        -cp "$LIBS_DIR/*" kafka.Kafka "$PROPS" \
        </dev/null >>"$SERVER_LOG" 2>&1 9>&- &
}

wait_ready() {
    local port deadline pid=""
    port="$(address)"; port="${port##*:}"
    deadline=$((SECONDS + START_TIMEOUT))
    while ((SECONDS < deadline)); do
        # The pid file appears a moment after launch; until then keep waiting.
        if [[ -f "$PID_FILE" ]]; then
            pid="$(cat "$PID_FILE")"
            if ! alive "$pid"; then
                tail -n 40 "$SERVER_LOG" >&2 || true
                rm -f "$PID_FILE"
                die "broker exited during startup (log: $SERVER_LOG)"
            fi
        fi
        if grep -qF "$READY_MESSAGE" "$SERVER_LOG" 2>/dev/null && port_in_use "$port"; then
            return 0
        fi
        sleep 0.5
    done
    tail -n 40 "$SERVER_LOG" >&2 || true
    die "broker not ready after ${START_TIMEOUT}s (log: $SERVER_LOG); it is left running, use 'stop'"
}

cmd_start() {
    resolve_state_dir create
    exec 9>"$STATE_DIR/.lock"
    flock 9  # concurrent starts on one state dir would launch two brokers
    if running_pid >/dev/null; then
        # Already ours; it may still be starting if another call just launched it.
        wait_ready
        address
        return 0
    fi
    rm -f "$PID_FILE"
    fetch_libs
    configure
    format_storage
    launch
    wait_ready
    log "broker up (pid $(cat "$PID_FILE"), state $STATE_DIR)"
    address
}

# --- stop / status -----------------------------------------------------------

cmd_stop() {
    resolve_state_dir || { log "not running (no $STATE_DIR)"; return 0; }
    exec 9>"$STATE_DIR/.lock"
    flock 9
    local pid
    if ! pid="$(running_pid)"; then
        rm -f "$PID_FILE"
        log "not running"
        return 0
    fi
    # SIGTERM runs Kafka's shutdown hook: a controlled shutdown that flushes
    # the logs, so the next start does not need log recovery.
    kill -TERM "$pid"
    local deadline=$((SECONDS + STOP_TIMEOUT))
    while alive "$pid" && ((SECONDS < deadline)); do
        sleep 0.2
    done
    if alive "$pid"; then
        log "no exit after ${STOP_TIMEOUT}s, sending SIGKILL to $pid"
        kill -KILL "$pid" 2>/dev/null || true
        while alive "$pid"; do sleep 0.1; done
    fi
    rm -f "$PID_FILE"
    log "stopped (pid $pid)"
}

cmd_status() {
    resolve_state_dir || { echo "not running"; return 1; }
    local pid
    if pid="$(running_pid)"; then
        echo "running $(address) (pid $pid)"
        return 0
    fi
    echo "not running"
    return 1
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    checksums) cmd_checksums ;;
    *) echo "usage: $0 start|stop|status|checksums" >&2; exit 2 ;;
esac
