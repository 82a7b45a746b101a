#!/usr/bin/env node
/*
 * Is the source deployable-shaped? Converts each package directory to Metadata API format with
 * @salesforce/source-deploy-retrieve (the library `sf project deploy start` uses) and fails when a
 * directory does not convert, or when a file in it belongs to no metadata component (a misnamed
 * folder or suffix would otherwise be left out of the deploy without a word).
 *
 * usage: node sdr-convert.cjs <dir holding node_modules/@salesforce/source-deploy-retrieve> <package dir>...
 * Needs Node >= 22 (the SDR 13 dependencies). Honours .forceignore.
 */
const fs = require('fs');
const os = require('os');
const path = require('path');

const [sdrHome, ...dirs] = process.argv.slice(2);
const { ComponentSet, MetadataConverter } = require(path.join(sdrHome, 'node_modules/@salesforce/source-deploy-retrieve'));

function files(dir) {
    return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
        const p = path.join(dir, e.name);
        return e.isDirectory() ? files(p) : [path.resolve(p)];
    });
}

(async () => {
    let problems = 0;
    for (const dir of dirs) {
        const set = ComponentSet.fromSource(dir);
        const covered = new Set();
        const types = {};
        for (const c of set.getSourceComponents()) {
            types[c.type.name] = (types[c.type.name] || 0) + 1;
            for (const p of [c.xml, c.content, ...c.walkContent()].filter(Boolean)) {
                if (fs.statSync(p).isDirectory()) {
                    files(p).forEach((f) => covered.add(f));
                } else {
                    covered.add(path.resolve(p));
                }
            }
            for (const child of c.getChildren()) {
                covered.add(path.resolve(child.xml));
            }
        }
        const ignored = (f) => f.includes(`${path.sep}__tests__${path.sep}`) || f.endsWith('jsconfig.json');
        for (const f of files(dir).filter((x) => !ignored(x) && !covered.has(x))) {
            console.log(`${path.relative(process.cwd(), f)}: part of no metadata component (misnamed folder or suffix?)`);
            problems++;
        }
        const out = fs.mkdtempSync(path.join(os.tmpdir(), 'sdr-'));
        await new MetadataConverter().convert(set, 'metadata', { type: 'directory', outputDirectory: out, genUniqueDir: false });
        fs.rmSync(out, { recursive: true, force: true });
        console.log(`${dir}: ${set.size} components (${Object.entries(types).map(([t, n]) => `${t} ${n}`).join(', ')})`);
    }
    console.log(`sf-deploy-shape: ${dirs.length} directories converted, ${problems} problems`);
    process.exit(problems ? 1 : 0);
})().catch((e) => {
    console.error(`sf-deploy-shape: ${e.name}: ${e.message}`);
    process.exit(1);
});
