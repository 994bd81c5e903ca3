//! Signing keys, and the public keys that check their signatures.
//!
//! A release is signed with what Debian and RPM tooling check, OpenPGP (packages,
//! repositories, `SHA256SUMS.asc`), and with what image tooling checks, an ECDSA P-256 key
//! (image signatures and DSSE attestations, as cosign makes and reads them). `--key FILE`
//! names a file holding either kind, or both one after the other; the kind is told by its
//! armour or PEM header. The OpenPGP key signs with its primary key; a passphrase comes from
//! `GRADIENT_KEY_PASSPHRASE`. No key material, passphrase or file content is ever quoted
//! back in a message.

use p256::ecdsa::signature::{Signer, Verifier};
use p256::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePublicKey, LineEnding};
use pgp::composed::{
    ArmorOptions, CleartextSignedMessage, Deserializable, DetachedSignature, SignedPublicKey,
    SignedSecretKey,
};
use pgp::crypto::hash::HashAlgorithm;
use pgp::types::{KeyDetails, Password};
use std::path::{Path, PathBuf};

/// The variable holding the OpenPGP key's passphrase, when it has one.
pub const PASSPHRASE_VAR: &str = "GRADIENT_KEY_PASSPHRASE";
/// The variable that may hold the key text itself, for CI secrets (instead of `--key FILE`).
pub const KEY_VAR: &str = "GRADIENT_SIGNING_KEY";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read the key file `{}`", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{origin} holds no key gradient can use ({reason})")]
    Unusable { origin: String, reason: String },
    #[error("{origin} holds two {kind} keys; give one of each kind at most")]
    Twice { origin: String, kind: &'static str },
    #[error("the OpenPGP key could not sign ({reason})")]
    Sign { reason: String },
}

impl gradient_core::Hint for KeyError {
    fn hint(&self) -> Option<String> {
        Some(match self {
            KeyError::Read { .. } => "give a readable file: --key FILE".into(),
            KeyError::Unusable { .. } => format!(
                "give an armoured OpenPGP secret key (`gpg --export-secret-keys --armor ID`) and/or an unencrypted PKCS#8 ECDSA P-256 key (`openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`); for verify, their public keys; a protected OpenPGP key takes its passphrase from {PASSPHRASE_VAR}"
            ),
            KeyError::Twice { .. } => "keep one key of each kind in a file".into(),
            KeyError::Sign { .. } => format!(
                "check the passphrase in {PASSPHRASE_VAR}, and that the primary key may sign"
            ),
        })
    }
}

/// The keys a release is signed with.
#[derive(Default)]
pub struct SigningKeys {
    pub pgp: Option<PgpSigner>,
    pub ecdsa: Option<EcdsaSigner>,
}

/// The public keys `verify` checks against.
#[derive(Default)]
pub struct VerifyingKeys {
    pub pgp: Vec<SignedPublicKey>,
    pub ecdsa: Vec<p256::ecdsa::VerifyingKey>,
}

/// An OpenPGP secret key, ready to sign.
pub struct PgpSigner {
    key: SignedSecretKey,
    password: Password,
    /// The armoured key and its passphrase, for the rpm header's signer, which reads its
    /// own copy.
    armored: String,
    passphrase: Option<String>,
}

/// An ECDSA P-256 private key, ready to sign.
pub struct EcdsaSigner {
    key: p256::ecdsa::SigningKey,
}

/// The PEM and armour blocks of a text, each with its label (`PGP PRIVATE KEY BLOCK`,
/// `PRIVATE KEY`, …) and its whole text, begin and end lines included.
fn blocks(text: &str) -> Vec<(&str, String)> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let after = &rest[start + 11..];
        let Some(label_end) = after.find("-----") else {
            break;
        };
        let label = &after[..label_end];
        let end_line = format!("-----END {label}-----");
        let Some(end) = rest[start..].find(&end_line) else {
            break;
        };
        let stop = start + end + end_line.len();
        found.push((label, format!("{}\n", &rest[start..stop])));
        rest = &rest[stop..];
    }
    found
}

fn read_key_file(path: &Path) -> Result<String, KeyError> {
    let bytes = std::fs::read(path).map_err(|source| KeyError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    String::from_utf8(bytes).map_err(|_| KeyError::Unusable {
        origin: format!("`{}`", path.display()),
        reason: "it is not text: give the armoured or PEM form".into(),
    })
}

impl SigningKeys {
    /// The keys in `files`, or in [`KEY_VAR`] when no file is given.
    pub fn load(files: &[PathBuf]) -> Result<SigningKeys, KeyError> {
        let mut keys = SigningKeys::default();
        let texts: Vec<(String, String)> = if files.is_empty() {
            match std::env::var(KEY_VAR) {
                Ok(text) if !text.trim().is_empty() => vec![(KEY_VAR.to_string(), text)],
                _ => return Ok(keys),
            }
        } else {
            files
                .iter()
                .map(|f| Ok((format!("`{}`", f.display()), read_key_file(f)?)))
                .collect::<Result<_, KeyError>>()?
        };
        let password = || -> Password {
            std::env::var(PASSPHRASE_VAR)
                .map(Password::from)
                .unwrap_or_else(|_| Password::empty())
        };
        for (origin, text) in texts {
            let unusable = |reason: String| KeyError::Unusable {
                origin: origin.clone(),
                reason,
            };
            let found = blocks(&text);
            if found.is_empty() {
                return Err(unusable("no armoured or PEM block".into()));
            }
            for (label, block) in found {
                match label {
                    "PGP PRIVATE KEY BLOCK" => {
                        let (key, _) = SignedSecretKey::from_string(&block).map_err(|e| {
                            unusable(format!("the OpenPGP secret key does not parse: {e}"))
                        })?;
                        if keys.pgp.is_some() {
                            return Err(KeyError::Twice {
                                origin,
                                kind: "OpenPGP",
                            });
                        }
                        keys.pgp = Some(PgpSigner {
                            key,
                            password: password(),
                            armored: block,
                            passphrase: std::env::var(PASSPHRASE_VAR).ok(),
                        });
                    }
                    "PRIVATE KEY" | "EC PRIVATE KEY" => {
                        let key = if label == "PRIVATE KEY" {
                            p256::ecdsa::SigningKey::from_pkcs8_pem(&block).map_err(|_| {
                                unusable("the PKCS#8 key is not an ECDSA P-256 key".into())
                            })?
                        } else {
                            let secret = p256::SecretKey::from_sec1_pem(&block)
                                .map_err(|_| unusable("the EC key is not a P-256 key".into()))?;
                            p256::ecdsa::SigningKey::from(secret)
                        };
                        if keys.ecdsa.is_some() {
                            return Err(KeyError::Twice {
                                origin,
                                kind: "ECDSA",
                            });
                        }
                        keys.ecdsa = Some(EcdsaSigner { key });
                    }
                    "ENCRYPTED PRIVATE KEY" | "ENCRYPTED SIGSTORE PRIVATE KEY" => {
                        return Err(unusable(
                            "the ECDSA key is encrypted; give it unencrypted, from a secret store"
                                .into(),
                        ))
                    }
                    "PGP PUBLIC KEY BLOCK" | "PUBLIC KEY" => {
                        return Err(unusable(
                            "it is a public key; signing needs the private key".into(),
                        ))
                    }
                    _ => {}
                }
            }
        }
        if keys.pgp.is_none() && keys.ecdsa.is_none() {
            return Err(KeyError::Unusable {
                origin: "the key given".into(),
                reason: "no OpenPGP secret key and no ECDSA P-256 private key in it".into(),
            });
        }
        // A wrong passphrase is found now, before anything is signed or sent.
        if let Some(pgp) = &keys.pgp {
            pgp.detached(b"")?;
        }
        Ok(keys)
    }

    /// The public halves, for checking what these keys signed.
    pub fn public(&self) -> VerifyingKeys {
        VerifyingKeys {
            pgp: self.pgp.iter().map(|k| k.key.to_public_key()).collect(),
            ecdsa: self.ecdsa.iter().map(|k| *k.key.verifying_key()).collect(),
        }
    }
}

impl VerifyingKeys {
    /// The public keys in `files` (OpenPGP public key blocks, PEM `PUBLIC KEY`s).
    pub fn load(files: &[PathBuf]) -> Result<VerifyingKeys, KeyError> {
        let mut keys = VerifyingKeys::default();
        for file in files {
            let origin = format!("`{}`", file.display());
            let text = read_key_file(file)?;
            let unusable = |reason: String| KeyError::Unusable {
                origin: origin.clone(),
                reason,
            };
            for (label, block) in blocks(&text) {
                match label {
                    "PGP PUBLIC KEY BLOCK" => keys.pgp.push(
                        SignedPublicKey::from_string(&block)
                            .map_err(|e| {
                                unusable(format!("the OpenPGP public key does not parse: {e}"))
                            })?
                            .0,
                    ),
                    "PUBLIC KEY" => keys.ecdsa.push(
                        p256::ecdsa::VerifyingKey::from_public_key_pem(&block).map_err(|_| {
                            unusable("the public key is not an ECDSA P-256 key".into())
                        })?,
                    ),
                    _ => {}
                }
            }
        }
        if keys.pgp.is_empty() && keys.ecdsa.is_empty() {
            return Err(KeyError::Unusable {
                origin: "the key files given".into(),
                reason: "no OpenPGP public key and no P-256 public key in them".into(),
            });
        }
        Ok(keys)
    }

    /// Whether one of the OpenPGP keys made `signature` (armoured, detached) over `data`.
    pub fn pgp_detached_holds(&self, data: &[u8], signature: &str) -> bool {
        let Ok((signature, _)) = DetachedSignature::from_string(signature) else {
            return false;
        };
        self.pgp.iter().any(|k| signature.verify(k, data).is_ok())
    }

    /// The text a cleartext-signed message (InRelease) carries, when one of the OpenPGP keys
    /// signed it.
    pub fn pgp_cleartext_text(&self, message: &str) -> Option<String> {
        let (message, _) = CleartextSignedMessage::from_string(message).ok()?;
        self.pgp
            .iter()
            .any(|k| message.verify(k).is_ok())
            .then(|| message.signed_text())
    }

    /// Whether one of the ECDSA keys made `signature` (ASN.1 DER) over `message`.
    pub fn ecdsa_holds(&self, message: &[u8], signature: &[u8]) -> bool {
        let Ok(signature) = p256::ecdsa::DerSignature::from_bytes(signature) else {
            return false;
        };
        self.ecdsa
            .iter()
            .any(|k| k.verify(message, &signature).is_ok())
    }
}

impl PgpSigner {
    /// An armoured detached signature over `data` (a `.asc` file, `Release.gpg`).
    pub fn detached(&self, data: &[u8]) -> Result<String, KeyError> {
        let signature = DetachedSignature::sign_binary_data(
            rand::thread_rng(),
            &self.key.primary_key,
            &self.password,
            HashAlgorithm::Sha256,
            data,
        )
        .map_err(|e| KeyError::Sign {
            reason: e.to_string(),
        })?;
        signature
            .to_armored_string(ArmorOptions::default())
            .map_err(|e| KeyError::Sign {
                reason: e.to_string(),
            })
    }

    /// `text` as a cleartext-signed message (`InRelease`).
    pub fn clearsign(&self, text: &str) -> Result<String, KeyError> {
        let message = CleartextSignedMessage::sign(
            rand::thread_rng(),
            text,
            &self.key.primary_key,
            &self.password,
        )
        .map_err(|e| KeyError::Sign {
            reason: e.to_string(),
        })?;
        message
            .to_armored_string(ArmorOptions::default())
            .map_err(|e| KeyError::Sign {
                reason: e.to_string(),
            })
    }

    /// The armoured public key, to publish beside what it signed.
    pub fn public_armored(&self) -> String {
        self.key
            .to_public_key()
            .to_armored_string(ArmorOptions::default())
            .expect("a parsed key serialises")
    }

    /// The key's fingerprint, upper-case hex, as gpg prints it.
    pub fn fingerprint(&self) -> String {
        hex::encode_upper(self.key.fingerprint().as_bytes())
    }

    /// A signer of rpm headers with this key (its primary key, as for every other
    /// signature here).
    pub fn rpm_signer(&self) -> Result<rpm::signature::pgp::Signer, KeyError> {
        let sign_error = |e: rpm::Error| KeyError::Sign {
            reason: e.to_string(),
        };
        let signer = rpm::signature::pgp::Signer::from_asc(&self.armored)
            .map_err(sign_error)?
            .with_signing_key(self.key.fingerprint().as_bytes())
            .map_err(sign_error)?;
        Ok(match &self.passphrase {
            Some(passphrase) => signer.with_key_passphrase(passphrase.clone()),
            None => signer,
        })
    }
}

impl EcdsaSigner {
    /// An ECDSA P-256 signature over SHA-256 of `message`, ASN.1 DER encoded (as cosign
    /// writes and reads them).
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        let signature: p256::ecdsa::DerSignature = self.key.sign(message);
        signature.as_bytes().to_vec()
    }

    /// The public key, PEM (`-----BEGIN PUBLIC KEY-----`), as `cosign verify --key` reads it.
    pub fn public_pem(&self) -> String {
        self.key
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .expect("a P-256 key encodes")
    }

    /// The key id of DSSE signatures: SHA-256 of the public key's DER form, hex.
    pub fn key_id(&self) -> String {
        let der = self
            .key
            .verifying_key()
            .to_public_key_der()
            .expect("a P-256 key encodes");
        gradient_driver::publish::sha256_hex(der.as_bytes())
    }
}
