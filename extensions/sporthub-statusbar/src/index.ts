/**
 * SportHub's status-bar item: where this person stands with the shared AI model ("AI: idle ·
 * 12k of 50k tokens today", "AI: 2nd in line, about 1 min", ...). Clicking it opens the chat.
 *
 * It asks the person's own server (`GET <base>/sporthub/status`, sporthub_coach/status.py),
 * which asks the gateway. Polling is gentle: every few seconds only while a question waits or
 * is answered, half a minute otherwise, longer after errors, and never while the tab is hidden.
 */

import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';
import { IStatusBar } from '@jupyterlab/statusbar';
import { ITranslator } from '@jupyterlab/translation';
import { Widget } from '@lumino/widgets';

import { describe, language, Language, pending, Status } from './format';

const BUSY_MS = 5_000; // a question waits or is answered: the athlete watches the line move
const IDLE_MS = 30_000;
const MAX_BACKOFF_MS = 5 * 60_000;
// the Coach answers in every chat (it is Jupyter AI's default persona here); this one is where
// the status bar takes the athlete, made on the first click if it does not exist
const CHAT_NAME = 'coach';
const CHAT_PANEL = 'JupyterlabChat:sidepanel';

// a function, not an inline test: the state changes while a request is awaited
function hidden(): boolean {
  return document.visibilityState === 'hidden';
}

class StatusPoller {
  private timer: number | undefined;
  private inFlight = false;
  private errors = 0;

  constructor(
    private readonly settings: ServerConnection.ISettings,
    private readonly show: (status: Status | null) => void
  ) {
    document.addEventListener('visibilitychange', () => {
      if (hidden()) {
        // a hidden tab costs the server nothing
        window.clearTimeout(this.timer);
      } else {
        void this.tick(); // what changed while it was hidden, at once
      }
    });
  }

  async tick(): Promise<void> {
    if (this.inFlight || hidden()) {
      return;
    }
    window.clearTimeout(this.timer);
    this.inFlight = true;
    let next: number;
    try {
      const url = URLExt.join(this.settings.baseUrl, 'sporthub', 'status');
      const response = await ServerConnection.makeRequest(url, { cache: 'no-store' }, this.settings);
      if (!response.ok) {
        throw new Error(`status ${response.status}`);
      }
      const status = (await response.json()) as Status;
      this.errors = 0;
      this.show(status);
      next = status.state === 'waiting' || status.state === 'answering' ? BUSY_MS : IDLE_MS;
    } catch {
      // the person's own server did not answer (restarting, network): say so, ask again later
      this.errors += 1;
      this.show(null);
      next = Math.min(BUSY_MS * 2 ** this.errors, MAX_BACKOFF_MS);
    } finally {
      this.inFlight = false;
    }
    if (!hidden()) {
      this.timer = window.setTimeout(() => void this.tick(), next);
    }
  }
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'sporthub-statusbar:plugin',
  description: "Where you stand with SportHub's shared AI model, in the status bar.",
  autoStart: true,
  requires: [IStatusBar],
  optional: [ITranslator],
  activate: (app: JupyterFrontEnd, statusBar: IStatusBar, translator: ITranslator | null) => {
    const lang: Language = language(translator?.languageCode);
    const item = new Widget();
    item.addClass('sporthub-status');
    item.node.setAttribute('role', 'button');
    item.node.style.cursor = 'pointer';
    item.node.style.padding = '0 4px';
    const render = (status: Status | null) => {
      const shown = describe(status, lang);
      item.node.textContent = shown.text;
      item.node.title = shown.title;
      item.node.dataset.state = status?.state ?? 'unreachable';
    };
    item.node.textContent = pending(lang).text;
    item.node.addEventListener('click', () => void openChat(app));

    statusBar.registerStatusItem(plugin.id, { item, align: 'left', rank: 100 });
    void new StatusPoller(app.serviceManager.serverSettings, render).tick();
  }
};

/** The Coach's chat in the side panel (jupyterlab-chat's own command), or the panel alone. */
async function openChat(app: JupyterFrontEnd): Promise<void> {
  const command = 'jupyterlab-chat:createAndOpen';
  if (app.commands.hasCommand(command)) {
    await app.commands.execute(command, { name: CHAT_NAME, inSidePanel: true });
  } else {
    app.shell.activateById(CHAT_PANEL);
  }
}

export default plugin;
