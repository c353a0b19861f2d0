/**
 * node-soap turns every response into an object with sax, one character at a time, looking up the
 * WSDL schema for every element: on the dyn-soap path that was about a quarter of the gateway's
 * CPU. Dyn's responses come in few shapes: the same elements, attributes and namespaces in the same
 * order, with different text. This learns each shape from node-soap itself and afterwards builds
 * node-soap's object for that shape straight from the new text.
 *
 * The second time a shape is seen it is learnt, by three node-soap parses: as received, and with every
 * text replaced by a numbered probe (`100000`, `100001`, … and `100000.5`, …). Where each probe
 * lands says where that text goes in node-soap's object and how node-soap converted it (kept as
 * is, `parseInt`, `Number`). The shape is used only when every text lands in exactly one place
 * with one of those conversions and the plan rebuilds the received response exactly as node-soap
 * parsed it; anything else (booleans, dates, mixed content, multiRef, a Fault) stays with
 * node-soap for good. Bodies outside a narrow subset of XML (entities, comments, CDATA, DOCTYPE,
 * single-quoted attributes, text with surrounding blanks) always take node-soap's full parse.
 */

/** node-soap's `WSDL.xmlToObject` for a whole body (it throws for a Fault or bad XML). */
export type XmlToObject = (xml: string) => unknown;

export interface SoapShapeStats {
  /** Responses built from a learnt shape. */
  hits: number;
  /** Responses node-soap parsed in full (unknown shape, not cacheable, or outside the subset). */
  parsed: number;
  /** Shapes learnt. */
  learnt: number;
  /** Shapes found not cacheable (node-soap parses them every time). */
  refused: number;
}

export interface SoapShapeMemo {
  parse: XmlToObject;
  stats: () => SoapShapeStats;
}

/** A body split into its skeleton (every text replaced by \u007F) and its texts, in order. */
interface Tokens {
  texts: string[];
  skeleton: string;
}

const SLOT = '\u007F'; // DEL: one byte, and discouraged in XML (a text holding it is parsed in full)
const PROBE_BASE = 100_000;
// The subset, checked once per shape on its skeleton: an XML declaration (only first), start, end
// and empty-element tags whose attribute values are double-quoted and free of entities, blanks
// (one character per step, so a long run cannot make the pattern backtrack), and text slots.
const SUBSET =
  /^(?:<\?xml\s[^?<>&\u007F]*\?>)?(?:<\/?[A-Za-z_][\w.:-]*(?:\s+[A-Za-z_][\w.:-]*="[^"<&\u007F]*")*\s*\/?>|\s|\u007F)*$/;

/**
 * Texts are what lies between a `>` and the next `<` and is not blank (blanks stay in the skeleton:
 * node-soap ignores them). Undefined when a text has an entity or blanks around it: node-soap's
 * parse decides then.
 */
function tokenize(body: string): Tokens | undefined {
  const texts: string[] = [];
  let skeleton = '';
  let copied = 0; // body[0, copied) is in the skeleton
  let close = body.indexOf('>');
  while (close !== -1) {
    const open = body.indexOf('<', close + 1);
    if (open === -1) break;
    if (open > close + 1) {
      const text = body.slice(close + 1, open);
      const trimmed = text.trim();
      if (trimmed !== '') {
        if (trimmed !== text || text.includes('&') || text.includes(SLOT)) return undefined;
        texts.push(text);
        skeleton += body.slice(copied, close + 1) + SLOT;
        copied = open;
      }
    }
    close = body.indexOf('>', open + 1);
  }
  return { texts, skeleton: skeleton + body.slice(copied) };
}

/** The skeleton is in the subset and its slots are exactly the texts. */
function inSubset({ skeleton, texts }: Tokens): boolean {
  return SUBSET.test(skeleton) && skeleton.split(SLOT).length === texts.length + 1;
}

function render(skeleton: string, texts: readonly string[]): string {
  const parts = skeleton.split(SLOT);
  let out = parts[0] ?? '';
  for (let i = 1; i < parts.length; i++) out += (texts[i - 1] ?? '') + (parts[i] ?? '');
  return out;
}

/** Builds one value of node-soap's object from a response's texts. */
type Build = (texts: readonly string[]) => unknown;

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return (
    value !== null && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype
  );
}

/** The same own keys in the same order. */
function sameKeys(a: Record<string, unknown>, b: Record<string, unknown>): boolean {
  const keys = Object.keys(a);
  const other = Object.keys(b);
  return keys.length === other.length && keys.every((key, i) => key === other[i]);
}

function leaf(index: number, convert: 'text' | 'int' | 'number'): Build {
  if (convert === 'int') return (texts) => Number.parseInt(texts[index] ?? '', 10);
  if (convert === 'number') return (texts) => Number(texts[index] ?? '');
  return (texts) => texts[index];
}

/**
 * The plan for one value: `parsed` is node-soap's object for the received texts, `probe` and
 * `half` its objects for the probe texts. Undefined when the shape cannot be planned.
 */
function plan(
  parsed: unknown,
  probe: unknown,
  half: unknown,
  texts: readonly string[],
  claimed: Set<number>,
): Build | undefined {
  if (Array.isArray(parsed)) {
    if (!Array.isArray(probe) || !Array.isArray(half)) return undefined;
    if (probe.length !== parsed.length || half.length !== parsed.length) return undefined;
    const items: Build[] = [];
    for (let i = 0; i < parsed.length; i++) {
      const item = plan(parsed[i], probe[i], half[i], texts, claimed);
      if (item === undefined) return undefined;
      items.push(item);
    }
    return (t) => items.map((build) => build(t));
  }
  if (isPlainObject(parsed)) {
    if (!isPlainObject(probe) || !isPlainObject(half)) return undefined;
    if (!sameKeys(parsed, probe) || !sameKeys(parsed, half)) return undefined;
    const keys = Object.keys(parsed);
    if (keys.includes('__proto__')) return undefined;
    const entries: [string, Build][] = [];
    for (const key of keys) {
      const value = plan(parsed[key], probe[key], half[key], texts, claimed);
      if (value === undefined) return undefined;
      entries.push([key, value]);
    }
    return (t) => {
      const out: Record<string, unknown> = {};
      for (const [key, build] of entries) out[key] = build(t);
      return out;
    };
  }
  if (parsed !== null && typeof parsed === 'object') return undefined; // Date, Buffer, …
  if (typeof parsed === 'function' || typeof parsed === 'symbol') return undefined;
  // A value that no text changes: an attribute, an empty element.
  if (Object.is(probe, parsed) && Object.is(half, parsed)) return () => parsed;
  const index = Number(probe) - PROBE_BASE;
  const text = texts[index];
  if (!Number.isInteger(index) || text === undefined || claimed.has(index)) return undefined;
  const expected = PROBE_BASE + index;
  let convert: 'text' | 'int' | 'number';
  if (probe === String(expected) && half === `${String(expected)}.5` && parsed === text) {
    convert = 'text';
  } else if (probe === expected && half === expected) {
    convert = 'int';
  } else if (probe === expected && half === expected + 0.5) {
    convert = 'number';
  } else {
    return undefined;
  }
  const build = leaf(index, convert);
  if (!Object.is(build(texts), parsed)) return undefined;
  claimed.add(index);
  return build;
}

/** A learnt shape: its skeleton cut at the slots, and how to build node-soap's object. */
interface Shape {
  parts: readonly string[];
  build: Build;
}

/** What the memo knows of a skeleton: seen once, learnt, or not cacheable. */
type Known = 'seen' | Shape | null;

/**
 * The texts of `body` when it has exactly this shape, read straight off the body (no skeleton
 * string is built): the parts must be there literally, and each text between them must be one
 * that tokenize() would have taken (up to the next `<`, not blank, no surrounding blanks, no
 * entity, no slot character). Undefined otherwise: tokenize() decides then.
 */
function match(body: string, parts: readonly string[]): string[] | undefined {
  const first = parts[0] ?? '';
  if (!body.startsWith(first)) return undefined;
  let at = first.length;
  const texts: string[] = [];
  for (let i = 1; i < parts.length; i++) {
    const end = body.indexOf('<', at);
    if (end <= at) return undefined;
    const text = body.slice(at, end);
    if (text.trim() !== text || text.includes('&') || text.includes(SLOT)) return undefined;
    texts.push(text);
    const part = parts[i] ?? '';
    if (!body.startsWith(part, end)) return undefined;
    at = end + part.length;
  }
  return at === body.length ? texts : undefined;
}

export interface SoapShapeOptions {
  /** Shapes remembered (the oldest goes first). */
  maxShapes?: number;
  /** Larger bodies always take node-soap's parse (Dyn's answers are about 1 KB). */
  maxBytes?: number;
}

/**
 * Wraps node-soap's parse with a memo of response shapes. A shape is learnt the second time it is
 * seen, so answers whose shape never repeats cost one parse, as before; a shape that cannot be
 * learnt is remembered as such and always parsed in full. Memory is bounded by
 * `maxShapes × maxBytes` (4 MB by default).
 */
export function memoizeSoapShapes(
  full: XmlToObject,
  { maxShapes = 256, maxBytes = 16_384 }: SoapShapeOptions = {},
): SoapShapeMemo {
  const shapes = new Map<string, Known>();
  const stats: SoapShapeStats = { hits: 0, parsed: 0, learnt: 0, refused: 0 };

  const learn = (tokens: Tokens, parsed: unknown): Shape | null => {
    const { skeleton, texts } = tokens;
    if (!inSubset(tokens)) return null;
    // Every text replaced by its number from PROBE_BASE, with `suffix` after it.
    const probed = (suffix: string): unknown => {
      const numbered = texts.map((_, i) => `${String(PROBE_BASE + i)}${suffix}`);
      return full(render(skeleton, numbered));
    };
    try {
      const claimed = new Set<number>();
      // plan() checks every value it builds against node-soap's: a plan rebuilds `parsed` exactly.
      const build = plan(parsed, probed(''), probed('.5'), texts, claimed);
      return build === undefined || claimed.size !== texts.length
        ? null
        : { parts: skeleton.split(SLOT), build };
    } catch {
      return null; // a probe node-soap refused: leave this shape to node-soap
    }
  };

  const remember = (skeleton: string, known: Known): void => {
    if (!shapes.has(skeleton) && shapes.size >= maxShapes) {
      const oldest = shapes.keys().next();
      if (oldest.done !== true) shapes.delete(oldest.value);
    }
    shapes.set(skeleton, known);
  };

  // The shape of the last hit, tried first: most answers have the shape of the one before.
  let last: Shape | undefined;

  const parse: XmlToObject = (xml) => {
    if (xml.length > maxBytes) {
      stats.parsed++;
      return full(xml);
    }
    const texts = last === undefined ? undefined : match(xml, last.parts);
    if (last !== undefined && texts !== undefined) {
      stats.hits++;
      return last.build(texts);
    }
    const tokens = tokenize(xml);
    if (tokens === undefined) {
      stats.parsed++;
      return full(xml);
    }
    const known = shapes.get(tokens.skeleton);
    if (known !== undefined && known !== null && known !== 'seen') {
      stats.hits++;
      last = known;
      return known.build(tokens.texts);
    }
    stats.parsed++;
    const parsed = full(xml); // a Fault or bad XML throws here, before anything is remembered
    if (known === undefined) {
      remember(tokens.skeleton, 'seen');
    } else if (known === 'seen') {
      const shape = learn(tokens, parsed);
      if (shape === null) stats.refused++;
      else stats.learnt++;
      remember(tokens.skeleton, shape);
    }
    return parsed;
  };

  return { parse, stats: () => ({ ...stats }) };
}
