#!/bin/sh
# invalidate-on-sync.sh — what a calendar sync hook runs when new data has landed: drop the
# cached responses built from the old data, so the next request of each type recomputes.
#
#   invalidate-on-sync.sh [--name SEGMENT] [--change NAME] [--redis URL | --local] [GLOB...]
#
# Without globs it names the change: `pipectl change calendar_sync` (or --change NAME) applies
# the rule the workers keep in the segment (their invalidation rules and policy triggers), so
# this script never has to know which request types a sync touches. When no worker has
# published that rule yet, it falls back to 'whats_next_data:*' 'events_by_range:*' (the
# seeded types built from calendar data). Give globs to invalidate those instead. The segment
# is --name, else $PIPECACHE_NAME, else "default"; $PIPECTL names the pipectl binary (default:
# pipectl on $PATH).
# Many hosts: with --redis URL, or $PIPECACHE_REDIS_URL set, the change (or each glob) is also
# broadcast to every other host's pipecache-relay; --local never broadcasts.
#
# Exit status, chosen so a sync job fails only when stale data could still be served:
#   0  every glob invalidated, or there is no segment at all (nothing cached, nothing stale)
#   1  the segment exists but could not be invalidated (corrupt, incompatible), or the
#      broadcast could not reach Redis (this host is invalidated, the others are not): stale
#      responses may be served until someone acts — the sync job should alert
#   2  this script was called wrongly, or pipectl rejected the arguments (a bug to fix)
set -u

pipectl=${PIPECTL:-pipectl}
name=${PIPECACHE_NAME:-default}
redis=${PIPECACHE_REDIS_URL:-}
change=calendar_sync

while [ $# -gt 0 ]; do
  case $1 in
    --name) [ $# -ge 2 ] || { echo "invalidate-on-sync: --name needs a value" >&2; exit 2; }
            name=$2; shift 2 ;;
    --name=*) name=${1#--name=}; shift ;;
    --change) [ $# -ge 2 ] || { echo "invalidate-on-sync: --change needs a value" >&2; exit 2; }
              change=$2; shift 2 ;;
    --change=*) change=${1#--change=}; shift ;;
    --redis) [ $# -ge 2 ] || { echo "invalidate-on-sync: --redis needs a URL" >&2; exit 2; }
             redis=$2; shift 2 ;;
    --redis=*) redis=${1#--redis=}; shift ;;
    --local) redis=; shift ;;
    -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    --) shift; break ;;
    -*) echo "invalidate-on-sync: unknown option $1" >&2; exit 2 ;;
    *) break ;;
  esac
done
# Exit 3 from pipectl: the segment is missing or unusable. pipectl cannot tell "missing" from
# "corrupt" by its exit code (both are 3), but the difference matters here: a missing segment
# holds nothing stale.
segment_unusable() {
  if [ ! -e "/dev/shm/pipecache.$name" ]; then
    echo "invalidate-on-sync: segment $name does not exist: nothing to invalidate" >&2
    exit 0
  fi
  echo "invalidate-on-sync: segment $name is unusable: stale responses may be served" >&2
  exit 1
}

if [ $# -eq 0 ]; then
  if [ -n "$redis" ]; then
    removed=$("$pipectl" change --name "$name" --broadcast --redis "$redis" -- "$change")
  else
    removed=$("$pipectl" change --name "$name" -- "$change")
  fi
  rc=$?
  case $rc in
    0) echo "invalidate-on-sync: segment $name: change $change: $removed removed${redis:+, broadcast}" >&2
       exit 0 ;;
    1) echo "invalidate-on-sync: segment $name has no rule for $change: default globs" >&2
       set -- 'whats_next_data:*' 'events_by_range:*' ;;
    2) exit 2 ;;  # pipectl already said what was wrong on stderr
    3) # No segment here: with --redis the other hosts still need to hear it (default globs).
       if [ -n "$redis" ] && [ ! -e "/dev/shm/pipecache.$name" ]; then
         set -- 'whats_next_data:*' 'events_by_range:*'
       else
         segment_unusable
       fi ;;
    4) echo "invalidate-on-sync: segment $name: change $change: $removed removed here, NOT broadcast" >&2
       exit 1 ;;
    *) exit 1 ;;
  esac
fi

status=0
for glob in "$@"; do
  if [ -n "$redis" ]; then
    removed=$("$pipectl" invalidate --name "$name" --broadcast --redis "$redis" -- "$glob")
  else
    removed=$("$pipectl" invalidate --name "$name" -- "$glob")
  fi
  rc=$?
  case $rc in
    0) echo "invalidate-on-sync: segment $name: $glob: $removed removed${redis:+, broadcast}" >&2 ;;
    4)
      # pipectl said why on stderr: invalidated here, not on the other hosts.
      echo "invalidate-on-sync: segment $name: $glob: $removed removed here, NOT broadcast" >&2
      status=1 ;;
    2) exit 2 ;;  # pipectl already said what was wrong on stderr
    3) segment_unusable ;;
    *) status=1 ;;
  esac
done
exit $status
