#!/bin/sh
# The workspace's command (the image's CMD, under tini): sets JupyterLab's language, then becomes
# jupyterhub-singleuser with the hub's arguments.
#
# The language follows the browser's (TRE_UI_LANGUAGE, fr or en, set by the spawner from
# Accept-Language) until the researcher picks one in JupyterLab's Settings > Language: that choice
# rewrites the setting without our marker line, and from then on it is left alone. Only $HOME is
# written (the root file system may be read-only).
set -eu

settings_dir="${JUPYTERLAB_SETTINGS_DIR:-$HOME/.jupyter/lab/user-settings}/@jupyterlab/translation-extension"
settings="$settings_dir/plugin.jupyterlab-settings"
marker="// tre-start-singleuser: follows the browser's language until you choose one in Settings > Language"

case "${TRE_UI_LANGUAGE:-en}" in
  fr | fr[-_]*) locale=fr_FR ;;
  *) locale=en ;;
esac

if [ ! -e "$settings" ] || grep -qF "$marker" "$settings" 2>/dev/null; then
  if ! { mkdir -p "$settings_dir" \
         && printf '%s\n{\n    "locale": "%s"\n}\n' "$marker" "$locale" > "$settings.tre-tmp" \
         && mv -f "$settings.tre-tmp" "$settings"; } 2>/dev/null; then
    echo "tre-start-singleuser: cannot write $settings; JupyterLab keeps its current language" >&2
  fi
fi

# JupyterLab's file browser opens at /project: a link there leads to the datasets (relative, so
# that on the host it points nowhere outside the project's own folder). A new project gets the
# starter notebook once; what researchers later delete or rename stays so.
if [ -d /data ] && [ -w /project ]; then
  [ -e /project/data ] || [ -L /project/data ] || ln -s ../data /project/data 2>/dev/null || true
  if [ ! -e /project/.tre-starter ] && [ -f /opt/tre/starter.ipynb ]; then
    [ -e /project/starter.ipynb ] || cp /opt/tre/starter.ipynb /project/starter.ipynb 2>/dev/null || true
    : > /project/.tre-starter 2>/dev/null || true
  fi
fi

# No process of the workspace may trace another (see tre_seccomp.py).
exec python3 -m tre_seccomp jupyterhub-singleuser "$@"
