#!/usr/bin/env bash
# The KAPL pull-request review (what `action.yml` runs; runnable by hand).
#
# For every policy the change adds or modifies between the base and head
# revisions: `kaplc check --format sarif` of the head revisions (one SARIF
# log for code scanning) and `kaplc diff BASE HEAD` of each policy (a policy
# the base lacks is compared with an empty one: all it grants is added).
# The markdown summary goes to $GITHUB_STEP_SUMMARY (when set), to
# $KAPL_SUMMARY (when set), to stdout, and as a pull-request comment when
# a token and a pull-request number are given.
#
# Exit status: 0 no widening, or a widening approved by the label; 1 a
# policy does not check, or a widening (or a comparison kaplc could not
# decide) without the approval label; 2 usage: not in a git repository, no
# base revision, no kaplc.
#
# Environment (the action sets these from its inputs; GitHub's runner sets
# the GITHUB_* ones):
#   KAPLC               the kaplc to run (default: `kaplc` on PATH)
#   KAPL_BASE_SHA       base revision (default: origin/$GITHUB_BASE_REF)
#   KAPL_HEAD_SHA       head revision (default: $GITHUB_SHA, else HEAD)
#   KAPL_PATHS          git pathspecs of the policies, space-separated
#                       (default: '*.kapl', every policy in the repository)
#   KAPL_LABELS         the pull request's labels, comma- or newline-separated
#   KAPL_APPROVAL_LABEL the label that approves a widening
#                       (default: kapl-widening-approved)
#   KAPL_SARIF          where to write the SARIF log (default: kapl.sarif)
#   KAPL_SUMMARY        also write the markdown summary to this file
#   KAPL_PR_NUMBER      pull-request number, for the comment
#   GH_TOKEN            token for `gh pr comment` (no token: no comment)
#   GITHUB_BASE_REF, GITHUB_SHA, GITHUB_STEP_SUMMARY, GITHUB_OUTPUT,
#   GITHUB_REPOSITORY   as GitHub Actions sets them
set -uo pipefail

kaplc=${KAPLC:-kaplc}
label=${KAPL_APPROVAL_LABEL:-kapl-widening-approved}
sarif=${KAPL_SARIF:-kapl.sarif}
read -r -a paths <<<"${KAPL_PATHS:-*.kapl}"

die() {
  echo "kapl review: $*" >&2
  exit 2
}

command -v "$kaplc" >/dev/null 2>&1 || die "no kaplc: \`$kaplc\` is not a program (set KAPLC)"
git rev-parse --git-dir >/dev/null 2>&1 || die "not inside a git repository"
root=$(git rev-parse --show-toplevel) || die "cannot find the repository's top level"
case $sarif in /*) ;; *) sarif="$PWD/$sarif" ;; esac
cd "$root" || die "cannot enter $root"

if [ -n "${KAPL_BASE_SHA:-}" ]; then
  base_rev=$KAPL_BASE_SHA
elif [ -n "${GITHUB_BASE_REF:-}" ]; then
  base_rev="origin/$GITHUB_BASE_REF"
else
  die "no base revision: set KAPL_BASE_SHA or GITHUB_BASE_REF (a pull_request event)"
fi
head_rev=${KAPL_HEAD_SHA:-${GITHUB_SHA:-HEAD}}
base=$(git rev-parse --verify --quiet "$base_rev^{commit}") ||
  die "base revision \`$base_rev\` is not in this clone (check out with fetch-depth: 0)"
head=$(git rev-parse --verify --quiet "$head_rev^{commit}") ||
  die "head revision \`$head_rev\` is not in this clone"

# Both revisions as whole trees (a policy's `use "./x.kapl"` is relative to
# it), side by side, so kaplc names them base/... and head/....
work=$(mktemp -d) || die "cannot make a temporary directory"
cleanup() {
  git worktree remove --force "$work/base" >/dev/null 2>&1
  git worktree remove --force "$work/head" >/dev/null 2>&1
  rm -rf "$work"
  git worktree prune >/dev/null 2>&1
}
trap cleanup EXIT
git worktree add --quiet --detach "$work/base" "$base" >/dev/null 2>&1 || die "cannot check out $base"
git worktree add --quiet --detach "$work/head" "$head" >/dev/null 2>&1 || die "cannot check out $head"

# Changed policies: added or modified since the merge base (renames as a
# deletion and an addition).
changed=()
while IFS= read -r f; do changed+=("$f"); done < <(
  git diff --name-only --no-renames --diff-filter=AM "$base...$head" -- "${paths[@]}"
)
removed=()
while IFS= read -r f; do removed+=("$f"); done < <(
  git diff --name-only --no-renames --diff-filter=D "$base...$head" -- "${paths[@]}"
)

has_label=false
while IFS= read -r l; do
  l=$(printf '%s' "$l" | sed 's/^[[:space:]]*//; s/[[:space:]]*$//')
  [ "$l" = "$label" ] && has_label=true
done < <(printf '%s\n' "${KAPL_LABELS:-}" | tr ',' '\n')

format=human
"$kaplc" diff --help 2>/dev/null | grep -q markdown && format=markdown

summary="$work/summary.md"
details="$work/details.md"
: >"$details"
failed_check=false
widened=()
undecided=()
rows=""

if [ ${#changed[@]} -gt 0 ]; then
  # One SARIF log over the head revisions, paths relative to the repository.
  (cd "$work/head" && "$kaplc" check --format sarif --color never "${changed[@]}") >"$sarif" 2>/dev/null
  case $? in
    0) ;;
    1) failed_check=true ;;
    *) die "kaplc check --format sarif failed (see: kaplc check ${changed[*]})" ;;
  esac
  [ -n "${GITHUB_OUTPUT:-}" ] && echo "sarif=$sarif" >>"$GITHUB_OUTPUT"
fi

for f in "${changed[@]}"; do
  check="ok"
  (cd "$work/head" && "$kaplc" check --color never "$f") >"$work/check.txt" 2>&1 || check="**errors**"
  new=""
  if [ ! -e "$work/base/$f" ]; then
    new=" (new policy: compared with an empty one)"
    mkdir -p "$(dirname "$work/base/$f")"
    printf '// %s is not in the base revision\n' "$f" >"$work/base/$f"
  fi
  args=(diff --color never)
  [ "$format" = markdown ] && args+=(--format markdown)
  (cd "$work" && "$kaplc" "${args[@]}" "base/$f" "head/$f") >"$work/diff.txt" 2>"$work/diff.err"
  status=$?
  case $status in
    0) verdict="does not widen" ;;
    1)
      verdict="**widens**"
      widened+=("$f")
      ;;
    *)
      verdict="**not compared** (kaplc diff exit $status)"
      undecided+=("$f")
      ;;
  esac
  rows+="| \`$f\`$new | $check | $verdict |"$'\n'
  {
    printf '\n### `%s`%s\n\n' "$f" "$new"
    if [ "$check" != ok ]; then
      printf '`kaplc check`:\n\n```text\n%s\n```\n\n' "$(cat "$work/check.txt")"
    fi
    if [ "$format" = markdown ] && [ "$status" -le 1 ]; then
      cat "$work/diff.txt"
      printf '\n'
      [ -s "$work/diff.err" ] && printf '```text\n%s\n```\n' "$(cat "$work/diff.err")"
    else
      printf '`kaplc diff`:\n\n```text\n%s\n```\n' "$(cat "$work/diff.txt" "$work/diff.err")"
    fi
  } >>"$details"
done

exit_status=0
{
  printf '## KAPL policy review\n\n'
  printf 'Base `%s`, head `%s`.\n\n' "$(git rev-parse --short "$base")" "$(git rev-parse --short "$head")"
  if [ ${#changed[@]} -eq 0 ] && [ ${#removed[@]} -eq 0 ]; then
    printf 'No policy changed.\n'
  else
    if [ ${#changed[@]} -gt 0 ]; then
      printf '| policy | check | authority |\n|---|---|---|\n%s' "$rows"
    fi
    for f in "${removed[@]}"; do
      printf -- '- `%s` was removed (its authority is gone).\n' "$f"
    done
    printf '\n'
    if $failed_check; then
      printf '**Failed**: a changed policy does not check (see the code-scanning alerts and below).\n\n'
    fi
    pending=$((${#widened[@]} + ${#undecided[@]}))
    if [ "$pending" -eq 0 ]; then
      printf 'No policy widens authority.\n'
    elif $has_label; then
      printf '**Widening approved** by the label `%s`: %s.\n' "$label" "$(printf '`%s` ' "${widened[@]}" "${undecided[@]}" | sed 's/ $//')"
    else
      printf '**Widening not approved**: %s widen%s authority. A reviewer who accepts this adds the label `%s` to the pull request.\n' \
        "$(printf '`%s` ' "${widened[@]}" "${undecided[@]}" | sed 's/ $//')" "$([ "$pending" -eq 1 ] && echo s)" "$label"
    fi
    cat "$details"
  fi
} >"$summary"

if $failed_check; then exit_status=1; fi
if [ $((${#widened[@]} + ${#undecided[@]})) -gt 0 ] && ! $has_label; then exit_status=1; fi

cat "$summary"
[ -n "${GITHUB_STEP_SUMMARY:-}" ] && cat "$summary" >>"$GITHUB_STEP_SUMMARY"
[ -n "${KAPL_SUMMARY:-}" ] && cp "$summary" "$KAPL_SUMMARY"

if [ -n "${GH_TOKEN:-}" ] && [ -n "${KAPL_PR_NUMBER:-}" ]; then
  # GitHub refuses comments over 65536 characters: cut long summaries.
  if [ "$(wc -c <"$summary")" -gt 60000 ]; then
    head -c 60000 "$summary" >"$work/comment.md"
    printf '\n\n(cut: the whole review is in the job summary)\n' >>"$work/comment.md"
    mv "$work/comment.md" "$summary"
  fi
  # Edit the token user's last comment, else add one: reruns do not pile up.
  if ! gh pr comment "$KAPL_PR_NUMBER" --edit-last --body-file "$summary" >/dev/null 2>&1 &&
    ! gh pr comment "$KAPL_PR_NUMBER" --body-file "$summary" >/dev/null; then
    echo "::warning::kapl review: could not comment on pull request #$KAPL_PR_NUMBER"
  fi
fi

exit "$exit_status"
