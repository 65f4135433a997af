/**
 * The status bar's words, in English and Russian: one pure function of the server's answer, so
 * every text the athlete can see is made here and nowhere else.
 */

export type State = 'idle' | 'waiting' | 'answering' | 'over_budget' | 'unavailable';

/** `GET /user/<name>/sporthub/status` (sporthub_coach/status.py). */
export interface Status {
  state: State;
  position: number | null;
  eta_s: number | null;
  /** Set when the gateway has no honest number (deep in line, or too uncertain): a lower bound. */
  eta_more_than_s?: number | null;
  budget: { used: number | null; limit: number | null; resets_at: string | null };
  /** The model is a demo model (embedded, or marked by the admin): its answers are not advice. */
  demo?: boolean;
}

export type Language = 'en' | 'ru';

/** What the item shows, and its tooltip. */
export interface Shown {
  text: string;
  title: string;
}

/** JupyterLab's language code ("ru-RU", "ru_RU", "en-US", ...) to one SportHub speaks. */
export function language(code: string | undefined): Language {
  return (code ?? '').toLowerCase().startsWith('ru') ? 'ru' : 'en';
}

/** 1st, 2nd, 3rd, 4th, 11th, 12th, 13th, 21st, 22nd, 101st, 111th. */
function ordinalEn(n: number): string {
  const tens = n % 100;
  if (tens >= 11 && tens <= 13) {
    return `${n}th`;
  }
  return `${n}${{ 1: 'st', 2: 'nd', 3: 'rd' }[n % 10] ?? 'th'}`;
}

/**
 * Russian plural after a number: one form for 1, 21, 31 (not 11), one for 2-4, 22-24 (not
 * 12-14), one for the rest ("1 токен", "2 токена", "5 токенов", "11 токенов", "21 токен").
 */
function pluralRu(n: number, one: string, few: string, many: string): string {
  const tens = n % 100;
  const units = n % 10;
  if (tens >= 11 && tens <= 14) {
    return many;
  }
  return units === 1 ? one : units >= 2 && units <= 4 ? few : many;
}

/** 950, 1.5k, 12k, 1.2M (en); 950, 1,5 тыс., 12 тыс., 1,2 млн (ru). */
export function tokens(n: number, lang: Language): string {
  const [value, unit] =
    n >= 1e6 ? [n / 1e6, lang === 'ru' ? ' млн' : 'M'] : n >= 1000 ? [n / 1000, lang === 'ru' ? ' тыс.' : 'k'] : [n, ''];
  // one decimal below ten (1.5k), whole numbers above (12k): enough to see where one stands
  const rounded = value < 10 && unit ? Math.round(value * 10) / 10 : Math.round(value);
  const digits = lang === 'ru' ? String(rounded).replace('.', ',') : String(rounded);
  return digits + unit;
}

/** "12k of 50k tokens today" / "12 тыс. из 50 тыс. токенов сегодня"; '' when unknown. */
function budget(status: Status, lang: Language): string {
  const { used, limit } = status.budget;
  if (used === null) {
    return '';
  }
  const shortLimit = limit === null ? '' : tokens(limit, lang);
  if (lang === 'ru') {
    if (limit === null) {
      // "сегодня 21 токен", "сегодня 12 тыс. токенов"
      const word = used >= 1000 ? 'токенов' : pluralRu(used, 'токен', 'токена', 'токенов');
      return `сегодня ${tokens(used, lang)} ${word}`;
    }
    // "из" asks for the genitive: "из 21 токена", "из 3000 токенов", "из 50 тыс. токенов"
    const word = limit < 1000 && limit % 10 === 1 && limit % 100 !== 11 ? 'токена' : 'токенов';
    return `${tokens(used, lang)} из ${shortLimit} ${word} сегодня`;
  }
  if (limit === null) {
    return `${tokens(used, lang)} ${used === 1 ? 'token' : 'tokens'} today`;
  }
  return `${tokens(used, lang)} of ${shortLimit} ${limit === 1 ? 'token' : 'tokens'} today`;
}

/**
 * "more than 1 minute", "больше 1 минуты", "больше 2 минут", "больше 21 минуты": after "больше"
 * Russian takes the genitive, singular for 1, 21, 31 (not 11), plural otherwise.
 */
export function moreThanMinutes(n: number, lang: Language): string {
  if (lang === 'ru') {
    return `больше ${n} ${pluralRu(n, 'минуты', 'минут', 'минут')}`;
  }
  return `more than ${n} ${n === 1 ? 'minute' : 'minutes'}`;
}

/** The wait in whole minutes, said plainly; '' when the gateway has no estimate yet. */
function wait(eta: number | null, lang: Language, moreThan: number | null = null): string {
  if (moreThan !== null && moreThan >= 60) {
    // no honest number: a bound the wait will very likely exceed
    return moreThanMinutes(Math.floor(moreThan / 60), lang);
  }
  if (eta === null) {
    return '';
  }
  if (eta < 60) {
    return lang === 'ru' ? 'меньше минуты' : 'under a minute';
  }
  const minutes = Math.round(eta / 60);
  return lang === 'ru' ? `примерно ${minutes} мин` : `about ${minutes} min`;
}

/** "00:00" in the browser's own time zone: the athlete's clock, not the server's. */
function clock(iso: string | null): string {
  const at = iso ? new Date(iso) : null;
  if (!at || isNaN(at.getTime())) {
    return '';
  }
  const two = (n: number) => String(n).padStart(2, '0');
  return `${two(at.getHours())}:${two(at.getMinutes())}`;
}

const TEXTS = {
  en: {
    ai: 'AI',
    aiDemo: 'AI (demo model)',
    idle: 'idle',
    idleTitle: 'The AI model is free. Click to open the chat with the Coach.',
    inLine: (p: string) => `${p} in line`,
    waitingTitle: 'Your question waits for the shared AI model; the Coach answers when its turn comes.',
    answering: 'answering',
    answeringTitle: 'The AI model is answering your question.',
    overBudget: (at: string) => (at ? `budget used up, resets at ${at}` : 'budget used up for today'),
    overBudgetTitle: "You have used today's AI budget. Questions are answered again after the reset.",
    unavailable: 'not available right now',
    unavailableTitle: 'The AI model cannot be reached right now. Please try again in a minute.'
  },
  ru: {
    ai: 'ИИ',
    aiDemo: 'ИИ (демо-модель)',
    idle: 'свободен',
    idleTitle: 'Модель ИИ свободна. Нажмите, чтобы открыть чат с Тренером.',
    inLine: (p: string) => `${p} в очереди`,
    waitingTitle: 'Ваш вопрос ждёт общую модель ИИ; Тренер ответит, когда подойдёт очередь.',
    answering: 'отвечает',
    answeringTitle: 'Модель ИИ отвечает на ваш вопрос.',
    overBudget: (at: string) => (at ? `лимит исчерпан, обновится в ${at}` : 'лимит на сегодня исчерпан'),
    overBudgetTitle: 'Дневной лимит ИИ израсходован. Вопросы снова принимаются после обновления.',
    unavailable: 'сейчас недоступен',
    unavailableTitle: 'Модель ИИ сейчас недоступна. Попробуйте ещё раз через минуту.'
  }
};

/** Before the first answer: nothing is known yet, so nothing is claimed. */
export function pending(lang: Language): Shown {
  return { text: `${TEXTS[lang].ai}: …`, title: '' };
}

/** What the status bar shows for a status from the server, or for none (server unreachable). */
export function describe(status: Status | null, lang: Language): Shown {
  const t = TEXTS[lang];
  // a demo model is named as such wherever the athlete looks: "AI (demo model): idle ..."
  const ai = status?.demo ? t.aiDemo : t.ai;
  const join = (...parts: string[]) => `${ai}: ${parts.filter(Boolean).join(', ')}`;
  if (status === null || status.state === 'unavailable') {
    return { text: join(t.unavailable), title: t.unavailableTitle };
  }
  switch (status.state) {
    case 'waiting': {
      const place = status.position === null ? '' : t.inLine(lang === 'ru' ? `${status.position}-й` : ordinalEn(status.position));
      return { text: join(place || t.inLine('').trim(), wait(status.eta_s, lang, status.eta_more_than_s ?? null)), title: t.waitingTitle };
    }
    case 'answering':
      return { text: join(t.answering), title: t.answeringTitle };
    case 'over_budget':
      return { text: join(t.overBudget(clock(status.budget.resets_at))), title: t.overBudgetTitle };
    default: {
      const spent = budget(status, lang);
      return { text: `${join(t.idle)}${spent ? ` · ${spent}` : ''}`, title: t.idleTitle };
    }
  }
}
