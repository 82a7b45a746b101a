#!/usr/bin/env bash
# Builds the suite's container image offline, without base images or a Docker engine, with
# buildah (Debian: `apt-get install buildah`): the same layout as the Dockerfile's distroless
# image, assembled FROM scratch: the `sextant` binary, the shared libraries `ldd` says it needs
# (glibc, libgcc; TLS is rustls), /etc/passwd and /etc/group with the non-root user 65532, a
# /tmp, and the OCI labels (version from `sextant --version`, git revision). Writes an OCI
# archive (push it with `skopeo copy oci-archive:FILE docker://REGISTRY/sextant:TAG`).
#
# usage: scripts/build-image.sh [--binary PATH] [--name REPOSITORY] [--output FILE] [--check]
#   --binary PATH  the sextant binary (default: cargo build --release -p sextant)
#   --name REPO    the image's repository (default: ghcr.io/sextant/sextant, the chart's image.repository)
#   --output FILE  the OCI archive (default: target/image/sextant-<version>.oci.tar)
#   --check        run the image: `sextant --version` must print the labelled version, the
#                  image must run as 65532 with the expected entrypoint and labels, and
#                  `sextant migrate feature-store` must migrate an SQLite database inside it,
#                  and `sextant serve admin` must be the admin console (it refuses a short token).
#
# Containers run with buildah's chroot isolation: the OCI runtime (crun) cannot create
# containers on this kind of machine ("cgroups in hybrid mode not supported").
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
binary=""; output=""; check=0; name=ghcr.io/sextant/sextant
while [ $# -gt 0 ]; do
    case $1 in
        --binary) binary=$2; shift 2 ;;
        --output) output=$2; shift 2 ;;
        --name) name=$2; shift 2 ;;
        --check) check=1; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "build-image: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
command -v buildah >/dev/null || { echo "build-image: buildah is missing (apt-get install buildah)" >&2; exit 1; }

if [ -z "$binary" ]; then
    (cd "$REPO" && SEXTANT_GIT_REVISION=$(git -C "$REPO" rev-parse HEAD) cargo build --release --locked -p sextant --bin sextant)
    binary=$REPO/target/release/sextant
fi
[ -x "$binary" ] || { echo "build-image: $binary is not an executable" >&2; exit 1; }
version_line=$("$binary" --version)                 # "sextant 0.1.0"
version=${version_line##* }
[[ $version =~ ^[0-9]+\.[0-9]+\.[0-9]+ ]] || { echo "build-image: cannot read a version from '$version_line'" >&2; exit 1; }
revision=$(git -C "$REPO" rev-parse HEAD)
# The working tree may hold changes that are not in that commit: say so in the label.
[ -z "$(git -C "$REPO" status --porcelain --untracked-files=no)" ] || revision="$revision-dirty"
output=${output:-$REPO/target/image/sextant-$version.oci.tar}
mkdir -p "$(dirname "$output")"

work=$(mktemp -d "${TMPDIR:-/tmp}/sextant-image.XXXXXX")
B=(buildah --root "$work/storage" --runroot "$work/run" --storage-driver vfs)
cleanup() { "${B[@]}" rm --all >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT

# The root filesystem: binary, its libraries (and the dynamic loader) at the paths ldd names.
rootfs=$work/rootfs
mkdir -p "$rootfs/usr/local/bin" "$rootfs/etc" "$rootfs/tmp"
chmod 1777 "$rootfs/tmp"
cp "$binary" "$rootfs/usr/local/bin/sextant"
libs=$(ldd "$binary" | grep -o '/[^ ]*' | sort -u)
[ -n "$libs" ] || { echo "build-image: ldd found no libraries for $binary (static binaries are not expected)" >&2; exit 1; }
for lib in $libs; do
    mkdir -p "$rootfs$(dirname "$lib")"
    cp -L "$lib" "$rootfs$lib"
done
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' >"$rootfs/etc/group"

ctr=$("${B[@]}" from scratch)
"${B[@]}" copy "$ctr" "$rootfs" / >/dev/null
"${B[@]}" config \
    --user 65532:65532 \
    --entrypoint '["/usr/local/bin/sextant"]' --cmd '--help' \
    --env TMPDIR=/tmp \
    --label org.opencontainers.image.title=sextant \
    --label "org.opencontainers.image.description=Sextant: custom machine learning for Salesforce (connector, feature store, trainer, gateway, admin console)" \
    --label org.opencontainers.image.licenses=Apache-2.0 \
    --label "org.opencontainers.image.version=$version" \
    --label "org.opencontainers.image.revision=$revision" \
    --label "org.opencontainers.image.created=$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    "$ctr"
image=$name:$version
"${B[@]}" commit --quiet "$ctr" "$image" >/dev/null
"${B[@]}" push --quiet "$image" "oci-archive:$output:$image"
size=$(du -h "$output" | cut -f1)
echo "build-image: $output ($image, revision $revision, $size, $(echo "$libs" | wc -l) libraries)"

if [ "$check" -eq 1 ]; then
    fail() { echo "build-image: check failed: $*" >&2; exit 1; }
    fmt='{{.OCIv1.Config.User}}|{{index .OCIv1.Config.Entrypoint 0}}|{{index .OCIv1.Config.Labels "org.opencontainers.image.version"}}|{{index .OCIv1.Config.Labels "org.opencontainers.image.revision"}}'
    got=$("${B[@]}" inspect --type image --format "$fmt" "$image")
    want="65532:65532|/usr/local/bin/sextant|$version|$revision"
    [ "$got" = "$want" ] || fail "image config is '$got', expected '$want'"
    run=$("${B[@]}" from --pull-never "$image")
    out=$("${B[@]}" run --isolation chroot "$run" -- /usr/local/bin/sextant --version)
    [ "$out" = "sextant $version" ] || fail "'sextant --version' in the image printed '$out'"
    # A real start of the feature store's database code inside the image: it must create and
    # migrate an SQLite file on the image's /tmp as the non-root user.
    "${B[@]}" run --isolation chroot --env SEXTANT_FEATURE_STORE__DATABASE_URL='sqlite:///tmp/check.sqlite?mode=rwc' \
        "$run" -- /usr/local/bin/sextant migrate feature-store \
        || fail "'sextant migrate feature-store' failed in the image"
    mnt=$("${B[@]}" mount "$run")
    [ -s "$mnt/tmp/check.sqlite" ] || fail "the migration left no database file"
    owner=$(stat -c %u "$mnt/tmp/check.sqlite")
    [ "$owner" = 65532 ] || fail "the database file belongs to uid $owner, not the image's user 65532"
    "${B[@]}" umount "$run" >/dev/null
    # The admin console is in the image too (`sextant serve admin`, the chart's admin Deployment):
    # started with a too-short token it must refuse with its own message.
    admin=$("${B[@]}" run --isolation chroot --env SEXTANT_ADMIN__ADMIN_TOKEN=short "$run" -- \
        /usr/local/bin/sextant serve admin 2>&1) && fail "'sextant serve admin' started with a short token"
    grep -q "admin_token must be at least" <<<"$admin" || fail "'sextant serve admin' in the image: $admin"
    echo "build-image: checked: runs as 65532:65532, 'sextant --version' = '$out', migrations ran in the image, the admin console is in it"
fi
