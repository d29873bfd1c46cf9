// The TRE's export requests, from inside JupyterLab.
//
// - A panel in the right sidebar shows the egress review's own page for this workspace
//   (/services/egress/panel?project=…): the person's open requests of the project, their states
//   and each file's automatic checks, each linked to its full page.
// - "Add to export request…" on a file of the file browser opens that panel with the file chosen:
//   into one of the project's draft or returned requests, or a new one; the automatic disclosure
//   checks run at once and the panel shows their outcome and flagged cells.
//
// The panel is the egress review's page in a frame of the same origin, signed in through the hub
// like every page of it: its forms carry the service's own XSRF token, its words come from the
// service's gettext catalogue (English or French, as the browser asks), and this extension calls
// no API and holds no token of its own (scripts of this origin could read the frame, as they can
// call the service with the browser's cookie anyway: JupyterHub's one origin). Nothing leaves the
// TRE from here: the egress review reads the file from the project folder itself, and only
// checkers release.

import { PageConfig, URLExt } from '@jupyterlab/coreutils';
import { IDefaultFileBrowser } from '@jupyterlab/filebrowser';
import { ITranslator } from '@jupyterlab/translation';
import { LabIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

const COMMAND = 'tre-airlock:add-to-request';
const PANEL_ID = 'tre-airlock-panel';

// The two words JupyterLab itself shows; everything in the panel is the service's.
const WORDS = {
  en: { add: 'Add to export request…', panel: 'Export requests', refresh: 'Refresh', tab: 'Open in a new tab' },
  fr: {
    add: 'Ajouter à une demande d’export…', panel: 'Demandes d’export', refresh: 'Actualiser',
    tab: 'Ouvrir dans un nouvel onglet'
  }
};

const EXPORT_SVG =
  '<svg xmlns="http://www.w3.org/2000/svg" width="16" viewBox="0 0 24 24">' +
  '<path class="jp-icon3" fill="#616161" d="M5 3h9l5 5v5h-2V9h-4V5H5v14h6v2H5a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2zm12 11 ' +
  '4 4-4 4v-3h-4v-2h4v-3z"/></svg>';

/** The words in the language JupyterLab shows (which follows the browser's at each visit). */
function wordsFor(translator) {
  const code = (translator && translator.languageCode) || document.documentElement.lang || 'en';
  return code.toLowerCase().startsWith('fr') ? WORDS.fr : WORDS.en;
}

/** The egress review's address: beside the hub (/services/egress/), unless page_config says otherwise. */
function egressBase() {
  const hubPrefix = PageConfig.getOption('hubPrefix') || '/hub/';
  return PageConfig.getOption('treEgressUrl') || URLExt.join(hubPrefix.replace(/hub\/?$/, ''), 'services/egress/');
}

/** The sidebar panel: the egress review's panel page for this project, in a frame. */
class ExportPanel extends Widget {
  constructor(words) {
    super();
    this.id = PANEL_ID;
    this.addClass('tre-airlock-panel');
    this.title.icon = new LabIcon({ name: 'tre-airlock:export', svgstr: EXPORT_SVG });
    this.title.caption = words.panel;
    this.base = egressBase();
    this.project = PageConfig.getOption('hubServerName');
    this.frame = document.createElement('iframe');
    this.frame.className = 'tre-airlock-frame';
    this.frame.title = words.panel;
    // Forms and links of the same origin; never scripts (the service's pages have none, and its
    // policy forbids them). Links to a request's full page open in a new tab.
    this.frame.setAttribute('sandbox', 'allow-forms allow-same-origin allow-popups allow-popups-to-escape-sandbox');
    // Above the frame: reload it, or open the same page in a tab (where the hub's sign-in page can
    // show, should the hub's session have ended: the hub's pages refuse to be framed).
    const bar = document.createElement('div');
    bar.className = 'tre-airlock-bar';
    const refresh = document.createElement('button');
    refresh.className = 'jp-Button jp-mod-styled jp-mod-reject tre-airlock-refresh';
    refresh.textContent = words.refresh;
    refresh.addEventListener('click', () => this.load(null));
    this.tab = document.createElement('a');
    this.tab.className = 'tre-airlock-tab';
    this.tab.target = '_blank';
    this.tab.rel = 'noopener';
    this.tab.textContent = words.tab;
    this.tab.href = this.address(null);
    bar.append(refresh, this.tab);
    this.node.append(bar, this.frame);
    this.pending = null;
  }

  address(paths) {
    const query = new URLSearchParams({ project: this.project || '' });
    for (const path of paths || []) {
      query.append('add', path);
    }
    return URLExt.join(this.base, 'panel') + '?' + query.toString();
  }

  /** Show the panel's page, with the files chosen for adding when some are given. */
  load(paths) {
    this.frame.src = this.address(paths);
  }

  onAfterShow() {
    // A file chosen meanwhile, or the first opening; otherwise the page is left as it was (a form
    // half filled stays so); Refresh reloads it.
    if (this.pending !== null) {
      this.load(this.pending);
      this.pending = null;
    } else if (!this.frame.getAttribute('src')) {
      this.load(null);
    }
  }
}

const plugin = {
  id: 'tre-airlock:plugin',
  description: 'Export requests from JupyterLab: add a file to a request, see the open requests and their checks.',
  autoStart: true,
  requires: [IDefaultFileBrowser],
  optional: [ITranslator],
  activate: (app, browser, translator) => {
    const words = wordsFor(translator);
    const panel = new ExportPanel(words);
    // On the right: the file browser stays open on the left while files are added.
    app.shell.add(panel, 'right', { rank: 950 });

    // Every file selected in the file browser (folders are left out): one request gets them all.
    const chosenFiles = () =>
      Array.from(browser.selectedItems()).filter(m => m.type !== 'directory').map(m => m.path);

    app.commands.addCommand(COMMAND, {
      label: words.add,
      caption: words.add,
      isEnabled: () => chosenFiles().length > 0,
      execute: () => {
        const paths = chosenFiles();
        if (!paths.length) {
          return;
        }
        if (panel.isVisible) {
          panel.load(paths);
        } else {
          panel.pending = paths;
          app.shell.activateById(PANEL_ID);
        }
      }
    });
    app.contextMenu.addItem({ command: COMMAND, selector: '.jp-DirListing-item[data-isdir="false"]', rank: 3 });
  }
};

export default plugin;
