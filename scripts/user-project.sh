#!/usr/bin/env bash
# Builds examples/user-project the way a user would, from lora4j's published coordinates only:
# this build's artifacts are installed into a private local repository (.cache/m2-user, so the
# shared ~/.m2 is left alone; its first run downloads the plugins), the user project is built
# against it (javac -Xlint:all -Werror), and its shaded jar is run with java -jar. The install
# runs with -Prelease, so the sources and javadoc jars are built too.
# Also checks that the README's fine-tune is the user project's FineTune.java, verbatim.
set -euo pipefail
LORA4J_SKIP_MAVEN=1 . "$(dirname "$0")/setup.sh"
cd "$LORA4J_ROOT"
repo=$LORA4J_ROOT/.cache/m2-user
classifier=$(sed -n 's/^classifier=//p' build/native/liblora4j.properties)
user=examples/user-project

# The README's fine-tune (between the lora4j:fine-tune markers) is FineTune.java, verbatim.
diff <(sed -n '/<!-- lora4j:fine-tune -->/,/<!-- \/lora4j:fine-tune -->/p' README.md | sed '1,2d;$d' | sed '$d') \
     "$user/src/main/java/com/example/FineTune.java" \
  || die "README.md's fine-tune differs from $user/src/main/java/com/example/FineTune.java"

say "installing lora4j ($classifier) into $repo"
mvn -B -q install -Prelease -DskipTests -Dmaven.repo.local="$repo" -pl .,bindings,native,java-api \
  -Dlora4j.native.classifier="$classifier" -Dlora4j.native.module="$(echo "$classifier" | tr .- __)"
say "building the user project against it"
(cd "$user" && mvn -B -q package -Dmaven.repo.local="$repo" -Dlora4j.native="$classifier")
say "java -jar $user/target/lora4j-user-1.0.jar"
out=$(java -jar "$user/target/lora4j-user-1.0.jar" 2>&1) || { echo "$out" >&2; die "the user project failed"; }
echo "$out"
if grep -q "WARNING" <<<"$out"; then die "the user project printed a warning (native access?)"; fi
grep -q "^merged: " <<<"$out" || die "the user project did not finish"
