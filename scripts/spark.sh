# A local Spark Connect server for tests. Source this file, then:
#   ensure_spark   install Java (root only; Debian packages) and PyPI's pyspark into a venv
#                  under ~/.cache/cutover-spark when missing
#   start_spark    start one server on a free loopback port, export CUTOVER_TEST_SPARK_URL
#                  (sc://127.0.0.1:PORT) once it accepts connections
#   stop_spark     stop it by its process id and remove its temp dir
# The server runs Spark in local mode (local[2], 1 GB driver), in UTC, with its UI off and
# everything bound to 127.0.0.1. It holds nothing worth keeping.

CUTOVER_SPARK_VERSION=${CUTOVER_SPARK_VERSION:-4.3.0}
CUTOVER_SPARK_VENV=${CUTOVER_SPARK_VENV:-$HOME/.cache/cutover-spark/venv-$CUTOVER_SPARK_VERSION}

spark_home() {
  "$CUTOVER_SPARK_VENV/bin/python" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))' 2>/dev/null
}

ensure_spark() {
  if ! command -v java >/dev/null 2>&1; then
    if [ "$(id -u)" != 0 ]; then
      echo "Java not found; install a JRE 17 (e.g. apt-get install openjdk-17-jre-headless) and re-run" >&2
      return 1
    fi
    echo "installing Java (Debian packages)..." >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq openjdk-17-jre-headless >/dev/null 2>&1 || {
      apt-get update -qq >/dev/null
      apt-get install -y -qq openjdk-17-jre-headless >/dev/null
    }
  fi
  if [ -n "$(spark_home)" ] && [ -x "$(spark_home)/sbin/start-connect-server.sh" ]; then return 0; fi
  echo "installing pyspark $CUTOVER_SPARK_VERSION (PyPI) into $CUTOVER_SPARK_VENV..." >&2
  python3 -m venv "$CUTOVER_SPARK_VENV"
  "$CUTOVER_SPARK_VENV/bin/pip" install --quiet --disable-pip-version-check "pyspark[connect]==$CUTOVER_SPARK_VERSION"
}

start_spark() {
  local home port pid
  home=$(spark_home) || { echo "pyspark not found in $CUTOVER_SPARK_VENV" >&2; return 1; }
  CUTOVER_SPARK_DIR=$(mktemp -d "${TMPDIR:-/tmp}/cutover-spark.XXXXXX")
  export CUTOVER_SPARK_DIR
  port=$(free_port)
  # In the foreground (--wait), so that it is a child whose id we hold.
  SPARK_HOME=$home SPARK_LOG_DIR=$CUTOVER_SPARK_DIR SPARK_PID_DIR=$CUTOVER_SPARK_DIR \
    SPARK_LOCAL_DIRS=$CUTOVER_SPARK_DIR SPARK_LOCAL_IP=127.0.0.1 \
    "$home/sbin/start-connect-server.sh" --wait \
    --master 'local[2]' --driver-memory 1g \
    --conf spark.connect.grpc.binding.address=127.0.0.1 --conf "spark.connect.grpc.binding.port=$port" \
    --conf spark.driver.bindAddress=127.0.0.1 --conf spark.driver.host=127.0.0.1 \
    --conf spark.ui.enabled=false --conf spark.sql.session.timeZone=UTC \
    --conf "spark.sql.warehouse.dir=$CUTOVER_SPARK_DIR/warehouse" \
    --conf "spark.driver.extraJavaOptions=-Dderby.system.home=$CUTOVER_SPARK_DIR" \
    >"$CUTOVER_SPARK_DIR/server.log" 2>&1 &
  pid=$!
  echo "$pid" >"$CUTOVER_SPARK_DIR/pid"
  for _ in $(seq 1 240); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      export CUTOVER_TEST_SPARK_URL="sc://127.0.0.1:$port"
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then break; fi
    sleep 0.5
  done
  echo "the Spark Connect server did not start; its log:" >&2
  tail -n 30 "$CUTOVER_SPARK_DIR/server.log" >&2
  stop_spark
  return 1
}

stop_spark() {
  [ -n "${CUTOVER_SPARK_DIR:-}" ] || return 0
  local pid
  pid=$(cat "$CUTOVER_SPARK_DIR/pid" 2>/dev/null || true)
  if [ -n "$pid" ]; then
    # The script execs the JVM through spark-submit: stop the whole group it leads.
    pkill -TERM -P "$pid" 2>/dev/null || true
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    pkill -KILL -P "$pid" 2>/dev/null || true
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -rf "$CUTOVER_SPARK_DIR"
  unset CUTOVER_SPARK_DIR CUTOVER_TEST_SPARK_URL
}
