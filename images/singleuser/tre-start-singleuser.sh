#!/bin/sh
# Starts JupyterLab for the hub. The UI language follows the browser's (TRE_UI_LANGUAGE, set by
# the spawner) until the researcher chooses one in JupyterLab's settings.
set -eu
settings="$HOME/.jupyter/lab/user-settings/@jupyterlab/translation-extension"
if [ ! -e "$settings/plugin.jupyterlab-settings" ]; then
  case "${TRE_UI_LANGUAGE:-en}" in
    fr) locale=fr_FR ;;
    *) locale=en ;;
  esac
  mkdir -p "$settings"
  printf '{\n  "locale": "%s"\n}\n' "$locale" > "$settings/plugin.jupyterlab-settings"
fi
exec jupyterhub-singleuser "$@"
